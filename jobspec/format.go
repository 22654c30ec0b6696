package jobspec

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in the canonical HCL layout (hclwrite.Format: aligned
// equals signs, two-space indentation, normalized spacing). The text is
// parsed first, and nothing is returned when that fails: the formatter works
// on tokens and would happily reshuffle a broken file, moving the error away
// from where the author looks. Only native syntax is formatted.
func Format(filename string, src []byte) ([]byte, hcl.Diagnostics) {
	if strings.HasSuffix(filename, ".json") {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot format JSON",
			Detail:   filename + " is in the JSON syntax; only native HCL files are formatted.",
		}}
	}
	if _, diags := parseSyntax(filename, src); diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), nil
}
