package jobspec

import (
	"strings"
	"testing"
	"time"
)

// TestRenderRoundTrip renders every example and parses the result again:
// the apps must come back identical, and rendering is stable.
func TestRenderRoundTrip(t *testing.T) {
	result, diags := ParseFiles(exampleJobs(t))
	if diags.HasErrors() {
		t.Fatalf("examples invalid:\n%s", renderDiags(result, diags))
	}
	rendered := Render(result.Apps)
	again, diags := Parse("rendered.hcl", rendered)
	if diags.HasErrors() {
		t.Fatalf("rendered job invalid:\n%s\n%s", renderDiags(again, diags), rendered)
	}
	want, got := toJSON(t, withoutSource(result.Apps)), toJSON(t, withoutSource(again.Apps))
	if got != want {
		t.Errorf("round trip changed the apps\n got: %s\nwant: %s", got, want)
	}
	if second := Render(again.Apps); string(second) != string(rendered) {
		t.Errorf("rendering is not stable:\n%s\n---\n%s", rendered, second)
	}
}

func TestRenderEscapesTemplateSequences(t *testing.T) {
	app := defaultApp("a")
	app.Backend = &Backend{Type: BackendExec, Exec: &ExecBackend{Command: "/bin/sh", Args: []string{"-c", "echo ${HOME} %{x}"}, KillSignal: "SIGTERM", KillTimeout: time.Second}}
	rendered := Render([]*App{app})
	apps, _ := parseValid(t, "r.hcl", string(rendered))
	if got := apps[0].Backend.Exec.Args[1]; got != "echo ${HOME} %{x}" {
		t.Errorf("args[1] = %q after round trip of:\n%s", got, rendered)
	}
}

func TestFormatDuration(t *testing.T) {
	tests := map[time.Duration]string{
		0:                             "0s",
		90 * time.Second:              "1m30s",
		time.Hour:                     "1h",
		5 * time.Minute:               "5m",
		time.Hour + 30*time.Minute:    "1h30m",
		time.Hour + time.Second:       "1h0m1s",
		1500 * time.Millisecond:       "1.5s",
		24*time.Hour + 10*time.Minute: "24h10m",
	}
	for d, want := range tests {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if !strings.HasPrefix(want, "0") {
			if parsed, err := time.ParseDuration(want); err != nil || parsed != d {
				t.Errorf("%q parses to %v, %v", want, parsed, err)
			}
		}
	}
}
