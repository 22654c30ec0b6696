package jobspec

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the *.golden files of the diagnostics tests")

// TestDiagnosticsGolden parses each broken job under testdata/bad and
// compares the diagnostics text, exactly as users see it, with its .golden
// file. A case is a file, or a directory whose *.hcl files are parsed
// together; in a directory, *.vars.hcl files are passed as variable files.
// Run with -update to rewrite the golden files after a deliberate change.
func TestDiagnosticsGolden(t *testing.T) {
	entries, err := os.ReadDir("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range entries {
		name := entry.Name()
		if strings.HasSuffix(name, ".golden") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", "bad", name)
			jobs, varFiles := goldenInputs(t, path, entry.IsDir())
			result, diags := ParseFiles(jobs, WithVarFiles(varFiles...))
			if !diags.HasErrors() && !strings.HasPrefix(name, "warning_") {
				t.Errorf("no errors reported; name warning-only cases warning_*")
			}
			if result.Apps != nil && diags.HasErrors() {
				t.Errorf("apps returned despite errors")
			}
			var got bytes.Buffer
			if err := WriteDiagnostics(&got, result.Files, diags, 78); err != nil {
				t.Fatal(err)
			}
			base, _, _ := strings.Cut(name, ".")
			golden := filepath.Join("testdata", "bad", base+".golden")
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestDiagnosticsGolden -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("diagnostics differ from %s:\n--- got ---\n%s\n--- want ---\n%s", golden, got.String(), want)
			}
		})
	}
}

func goldenInputs(t *testing.T, path string, isDir bool) (jobs, varFiles []string) {
	t.Helper()
	if !isDir {
		return []string{path}, nil
	}
	matches, err := filepath.Glob(filepath.Join(path, "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range matches {
		if strings.HasSuffix(m, ".vars.hcl") {
			varFiles = append(varFiles, m)
		} else {
			jobs = append(jobs, m)
		}
	}
	return jobs, varFiles
}
