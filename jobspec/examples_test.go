package jobspec

import (
	"path/filepath"
	"testing"
)

func exampleJobs(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob("../examples/jobs/*.hcl")
	if err != nil || len(paths) < 5 {
		t.Fatalf("example jobs: %v, %d files", err, len(paths))
	}
	return paths
}

// TestExampleJobsValidate keeps examples/jobs honest: each file is valid on
// its own and all of them together (app names unique across the set, and
// away_from/near references resolve).
func TestExampleJobsValidate(t *testing.T) {
	paths := exampleJobs(t)
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			result, diags := ParseFiles([]string{path})
			if diags.HasErrors() {
				t.Fatalf("invalid:\n%s", renderDiags(result, diags))
			}
			if len(result.Apps) == 0 {
				t.Fatal("no apps")
			}
		})
	}
	result, diags := ParseFiles(paths)
	if diags.HasErrors() {
		t.Fatalf("invalid together:\n%s", renderDiags(result, diags))
	}
	for _, diag := range diags {
		if diag.Summary == "Reference to an app not in these files" {
			t.Errorf("example references an app no example declares: %s", location(*diag.Subject))
		}
	}
	modes := map[Mode]bool{}
	for _, app := range result.Apps {
		modes[app.Mode] = true
	}
	if len(modes) != 4 {
		t.Errorf("examples show modes %v, want all four", modes)
	}
}
