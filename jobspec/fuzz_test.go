package jobspec

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary text through everything a user's job file
// reaches: both syntaxes, the formatter and both diagnostic renderers. None
// may panic, and a job that parses cleanly must render to a job that parses
// cleanly too.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 60s ./jobspec
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../examples/jobs/*.hcl")
	bad, _ := filepath.Glob("testdata/bad/*.hcl*")
	nested, _ := filepath.Glob("testdata/bad/*/*.hcl")
	for _, path := range append(append(seeds, bad...), nested...) {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, name := range []string{"job.hcl", "job.hcl.json"} {
			result, diags := Parse(name, src)
			var text bytes.Buffer
			if err := WriteDiagnostics(&text, result.Files, diags, 78); err != nil {
				t.Fatal(err)
			}
			JSONDiagnostics(result.Files, diags)
			if diags.HasErrors() {
				continue
			}
			rendered := Render(result.Apps)
			if again, diags := Parse("rendered.hcl", rendered); diags.HasErrors() {
				t.Fatalf("rendering of a valid %s does not parse:\n%s\n%s", name, renderDiags(again, diags), rendered)
			}
		}
		Format("job.hcl", src)
	})
}
