package jobspec

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// parseValid parses src and fails the test on any error, printing the
// diagnostics as users would see them.
func parseValid(t *testing.T, filename, src string, opts ...Option) ([]*App, hcl.Diagnostics) {
	t.Helper()
	result, diags := Parse(filename, []byte(src), opts...)
	if diags.HasErrors() {
		t.Fatalf("unexpected errors:\n%s", renderDiags(result, diags))
	}
	return result.Apps, diags
}

// parseInvalid parses src, expects errors and returns them as text.
func parseInvalid(t *testing.T, filename, src string, opts ...Option) string {
	t.Helper()
	result, diags := Parse(filename, []byte(src), opts...)
	if !diags.HasErrors() {
		t.Fatalf("expected errors, got none")
	}
	if result.Apps != nil {
		t.Errorf("apps returned despite errors")
	}
	return renderDiags(result, diags)
}

func renderDiags(result *Result, diags hcl.Diagnostics) string {
	var buf bytes.Buffer
	_ = WriteDiagnostics(&buf, result.Files, diags, 0)
	return buf.String()
}

// withoutSource clears the declaration positions, which tests comparing
// apps from different sources do not care about.
func withoutSource(apps []*App) []*App {
	for _, app := range apps {
		app.Source = Location{}
	}
	return apps
}

// defaultApp is an app as decoded from a block setting nothing but a name.
func defaultApp(name string) *App {
	return &App{
		Name:    name,
		Mode:    ModeSingleton,
		Restart: Restart{Attempts: DefaultRestartAttempts, Interval: DefaultRestartInterval, Delay: DefaultRestartDelay, Mode: DefaultRestartMode},
		Update:  Update{MaxParallel: DefaultMaxParallel, MinHealthyTime: DefaultMinHealthyTime, HealthyDeadline: DefaultHealthyDeadline},
	}
}

func assertContains(t *testing.T, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

func summaries(diags hcl.Diagnostics) []string {
	out := make([]string, len(diags))
	for i, diag := range diags {
		out[i] = diag.Summary
	}
	return out
}
