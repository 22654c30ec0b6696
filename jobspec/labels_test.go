package jobspec

import (
	"strings"
	"testing"
)

func TestTemplateLabelsOnlyOnTopLevelApps(t *testing.T) {
	tests := []struct {
		name, src string
		valid     bool
	}{
		{"interpolation", "app \"${x}\" {\n}\n", true},
		{"nested quotes", "app \"${f(\"}\")}\" {\n}\n", true},
		{"directive", "app \"a%{ if x }b%{ endif }\" {\n}\n", true},
		{"literal", "app \"db\" {\n}\n", true},
		{"other block", "service \"${v}\" {\n}\n", false},
		{"nested app block", "x {\n  app \"${v}\" {\n  }\n}\n", false},
		{"second label", "app \"a\" \"${v}\" {\n}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := parseSyntax("job.hcl", []byte(tt.src))
			if diags.HasErrors() == tt.valid {
				t.Errorf("syntax errors = %v, want valid = %v", diags, tt.valid)
			}
		})
	}
}

// TestHeredocLookingLikeAnAppIsText makes sure only real app labels are
// treated as templates: a heredoc line that looks like one stays text.
func TestHeredocLookingLikeAnAppIsText(t *testing.T) {
	src := "variable \"v\" {\n  default = \"x\"\n}\n\napp \"a\" {\n  backend \"exec\" {\n    command = \"/bin/cat\"\n    args = [<<-EOT\n      app \"${var.v}\" {\n      app \"$${raw}\" {\n      EOT\n    ]\n  }\n}\n"
	apps, _ := parseValid(t, "job.hcl", src)
	if got, want := apps[0].Backend.Exec.Args[0], "app \"x\" {\napp \"${raw}\" {\n"; got != want {
		t.Errorf("heredoc = %q, want %q", got, want)
	}
}

func TestLabelDiagnosticsPointAtOriginalText(t *testing.T) {
	src := "app \"${var.nope}-db\" {\n  mode = \"spread\"\n  vip  = \"10.0.0.1/24\"\n}\n"
	result, diags := Parse("job.hcl", []byte(src))
	out := renderDiags(result, diags)
	assertContains(t, out,
		"on job.hcl:1:11, in app \"${var.nope}-db\":",
		"   1: app \"${var.nope}-db\" {\n        "+strings.Repeat(" ", len(`app "${var`))+"^^^^^\n",
	)
}
