package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2"
	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/urfave/cli/v2"
)

// diagnosticWidth is where diagnostic details wrap: narrow enough for a
// split terminal or a CI log, without asking the terminal for its size.
const diagnosticWidth = 78

// writeDiagnostics prints diagnostics as text, with source snippets from
// files.
func writeDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	return jobspec.WriteDiagnostics(w, files, diags, diagnosticWidth)
}

// writeJSON writes v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// errFailed is returned by a command that has already explained its failure
// on the output: only the exit code is left to set.
var errFailed = cli.Exit("", exitFailure)

// countSummary renders "2 errors, 1 warning" for the closing line of a
// command.
func countSummary(diags hcl.Diagnostics) string {
	var errs, warnings int
	for _, diag := range diags {
		if diag.Severity == hcl.DiagError {
			errs++
		} else {
			warnings++
		}
	}
	return fmt.Sprintf("%s, %s", plural(errs, "error"), plural(warnings, "warning"))
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
