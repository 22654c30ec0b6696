package jobspec

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestJSONDiagnostics(t *testing.T) {
	src := "app \"db\" {\n  mode = \"spred\"\n  sqlite = \"/d.db\"\n}\n"
	result, diags := Parse("job.hcl", []byte(src))
	out := JSONDiagnostics(result.Files, diags)
	if len(out) != 1 {
		t.Fatalf("got %d diagnostics, want 1: %+v", len(out), out)
	}
	got := out[0]
	if got.Severity != "error" || got.Summary != "Unknown mode" || !strings.Contains(got.Detail, `Did you mean "spread"?`) {
		t.Errorf("diagnostic = %+v", got)
	}
	wantRange := &JSONRange{Filename: "job.hcl", Start: JSONPos{Line: 2, Column: 10, Byte: 20}, End: JSONPos{Line: 2, Column: 17, Byte: 27}}
	if *got.Range != *wantRange {
		t.Errorf("range = %+v, want %+v", *got.Range, *wantRange)
	}
	wantSnippet := &JSONSnippet{Context: `app "db"`, Code: `  mode = "spred"`, StartLine: 2, HighlightStartOffset: 9, HighlightEndOffset: 16}
	if *got.Snippet != *wantSnippet {
		t.Errorf("snippet = %+v, want %+v", *got.Snippet, *wantSnippet)
	}
	if hl := got.Snippet.Code[got.Snippet.HighlightStartOffset:got.Snippet.HighlightEndOffset]; hl != `"spred"` {
		t.Errorf("highlight = %q", hl)
	}
	encoded, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"severity"`, `"summary"`, `"detail"`, `"filename"`, `"start"`, `"end"`, `"line"`, `"column"`, `"byte"`, `"snippet"`, `"code"`} {
		if !bytes.Contains(encoded, []byte(key)) {
			t.Errorf("JSON lacks %s: %s", key, encoded)
		}
	}
}

func TestJSONDiagnosticWithoutRange(t *testing.T) {
	diags := hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "S", Detail: "D"}}
	out := JSONDiagnostics(nil, diags)
	if out[0].Severity != "warning" || out[0].Range != nil || out[0].Snippet != nil {
		t.Errorf("diagnostic = %+v", out[0])
	}
}

func TestWriteDiagnosticsLayout(t *testing.T) {
	src := []byte("app \"db\" {\n\tmeta {\n\t\towner = [\n\t\t\t\"a\",\n\t\t]\n\t}\n}\n")
	files := map[string]*hcl.File{"job.hcl": {Bytes: src}}
	start := bytes.Index(src, []byte("["))
	end := bytes.Index(src, []byte("]")) + 1
	diags := hcl.Diagnostics{
		{
			Severity: hcl.DiagError,
			Summary:  "Multi-line subject",
			Detail:   "one two three four five six",
			Subject: &hcl.Range{
				Filename: "job.hcl",
				Start:    hcl.Pos{Line: 3, Column: 11, Byte: start},
				End:      hcl.Pos{Line: 5, Column: 4, Byte: end},
			},
		},
		{
			Severity: hcl.DiagWarning,
			Summary:  "Empty subject",
			Subject:  &hcl.Range{Filename: "job.hcl", Start: hcl.Pos{Line: 1, Column: 10, Byte: 9}, End: hcl.Pos{Line: 1, Column: 10, Byte: 9}},
		},
		{Severity: hcl.DiagError, Summary: "No subject", Detail: "Just text."},
		{
			Severity: hcl.DiagError,
			Summary:  "Unknown file",
			Subject:  &hcl.Range{Filename: "other.hcl", Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 2, Byte: 1}},
		},
	}
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, files, diags, 14); err != nil {
		t.Fatal(err)
	}
	want := "Error: Multi-line subject\n\n" +
		"  on job.hcl:3:11:\n" +
		"     3: \t\towner = [\n" +
		"        \t\t        ^\n" +
		"     4: \t\t\t\"a\",\n" +
		"        \t\t\t^^^^\n" +
		"     5: \t\t]\n" +
		"        \t\t^\n\n" +
		"one two three\nfour five six\n\n" +
		"Warning: Empty subject\n\n" +
		"  on job.hcl:1:10:\n" +
		"     1: app \"db\" {\n" +
		"                 ^\n\n" +
		"Error: No subject\n\n" +
		"Just text.\n\n" +
		"Error: Unknown file\n\n" +
		"  on other.hcl:1:1:\n\n"
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}
