package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gcl runs the command in-process and returns its exit code and output.
func gcl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"gcl"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeJob(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, text)
		}
	}
}

const validJob = `variable "unit" {
  default = "pg.service"
}

app "database" {
  backend "systemd" {
    unit = var.unit
  }
}
`

const invalidJob = `app "database" {
  mode  = "singelton"
  count = 2
  backend "systemd" {
    unit = "pg.service"
  }
}
`

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	valid := writeJob(t, dir, "valid.hcl", validJob)
	invalid := writeJob(t, dir, "invalid.hcl", invalidJob)
	warning := writeJob(t, dir, "warning.hcl", "app \"ldap\" {\n  vip = \"10.0.2.5/24\"\n}\n")

	code, stdout, stderr := gcl(t, "job", "validate", valid)
	if code != 0 || !strings.Contains(stdout, "Valid: 1 app (database)") || stderr != "" {
		t.Errorf("valid file: code %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	code, stdout, stderr = gcl(t, "job", "validate", warning)
	if code != 0 {
		t.Errorf("warnings must not fail validation: code %d\n%s", code, stderr)
	}
	mustContain(t, "stderr", stderr, "Warning: VIP interface will be inferred", "warning.hcl:2:9")
	mustContain(t, "stdout", stdout, "0 errors, 1 warning")

	code, stdout, stderr = gcl(t, "job", "validate", invalid)
	if code != 1 || stdout != "" {
		t.Errorf("invalid file: code %d, stdout %q", code, stdout)
	}
	mustContain(t, "stderr", stderr,
		"Error: Unknown mode",
		"on "+invalid+":2:11, in app \"database\":",
		"   2:   mode  = \"singelton\"\n",
		"^^^^^^^^^^^",
		`Did you mean "singleton"?`,
		"Invalid: 1 error, 0 warnings.",
	)
}

func TestValidateDirectoryAndDuplicates(t *testing.T) {
	dir := t.TempDir()
	writeJob(t, dir, "a.hcl", validJob)
	writeJob(t, dir, "b.hcl.json", `{"app": {"database": {"vip": "10.0.0.5/24"}}}`)
	writeJob(t, dir, "notes.txt", "not a job")
	code, _, stderr := gcl(t, "job", "validate", dir)
	if code != 1 {
		t.Fatalf("duplicate across files: code %d", code)
	}
	mustContain(t, "stderr", stderr, "Duplicate app", "b.hcl.json", "a.hcl:5:5")
}

func TestValidateVariables(t *testing.T) {
	dir := t.TempDir()
	job := writeJob(t, dir, "job.hcl", validJob)
	varFile := writeJob(t, dir, "prod.hcl", `unit = "file.service"`)
	t.Setenv("GCL_VAR_unit", "env.service")

	code, stdout, stderr := gcl(t, "job", "inspect", "-var-file", varFile, job)
	if code != 0 || !strings.Contains(stdout, `unit = "file.service"`) {
		t.Errorf("-var-file must beat GCL_VAR_: code %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = gcl(t, "job", "inspect", "-var", "unit=a.service", "-var-file", varFile, "-var", "unit=b,c.service", job)
	if code != 0 || !strings.Contains(stdout, `unit = "b,c.service"`) {
		t.Errorf("last -var must win, commas kept: code %d\n%s", code, stdout)
	}
	code, stdout, _ = gcl(t, "job", "inspect", job)
	if code != 0 || !strings.Contains(stdout, `unit = "env.service"`) {
		t.Errorf("GCL_VAR_ must beat the default: code %d\n%s", code, stdout)
	}
	code, _, stderr = gcl(t, "job", "validate", "-var", "unti=x", job)
	if code != 1 {
		t.Errorf("undeclared -var: code %d", code)
	}
	mustContain(t, "stderr", stderr, "Value for undeclared variable", `Did you mean "unit"?`)
	code, _, stderr = gcl(t, "job", "validate", "-var", "novalue", job)
	if code != 1 {
		t.Errorf("malformed -var: code %d", code)
	}
	mustContain(t, "stderr", stderr, "expected NAME=VALUE")
}

func TestValidateJSON(t *testing.T) {
	dir := t.TempDir()
	invalid := writeJob(t, dir, "invalid.hcl", invalidJob)
	// The flag after the file name works too.
	code, stdout, stderr := gcl(t, "job", "validate", invalid, "-json")
	if code != 1 || stderr != "" {
		t.Errorf("code %d, stderr %q", code, stderr)
	}
	var out struct {
		Valid       bool     `json:"valid"`
		Apps        []string `json:"apps"`
		Diagnostics []struct {
			Severity string `json:"severity"`
			Summary  string `json:"summary"`
			Range    struct {
				Filename string `json:"filename"`
				Start    struct{ Line, Column, Byte int }
			} `json:"range"`
			Snippet struct {
				Code string `json:"code"`
			} `json:"snippet"`
		} `json:"diagnostics"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if out.Valid || len(out.Diagnostics) != 1 {
		t.Fatalf("output: %+v", out)
	}
	d := out.Diagnostics[0]
	if d.Severity != "error" || d.Summary != "Unknown mode" || d.Range.Filename != invalid || d.Range.Start.Line != 2 || d.Range.Start.Column != 11 || d.Snippet.Code != `  mode  = "singelton"` {
		t.Errorf("diagnostic: %+v", d)
	}

	valid := writeJob(t, dir, "valid.hcl", validJob)
	code, stdout, _ = gcl(t, "job", "validate", "-json", valid)
	if code != 0 || !strings.Contains(stdout, `"valid": true`) || !strings.Contains(stdout, `"database"`) {
		t.Errorf("valid -json: code %d\n%s", code, stdout)
	}
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	job := writeJob(t, dir, "job.hcl", validJob)

	code, stdout, _ := gcl(t, "job", "inspect", job, "-json", "-var", "unit=x.service")
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	var out struct {
		Apps []struct {
			Name    string `json:"name"`
			Mode    string `json:"mode"`
			Backend struct {
				Systemd struct{ Unit string } `json:"systemd"`
			} `json:"backend"`
			Restart struct {
				Interval int64 `json:"interval"`
			} `json:"restart"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if len(out.Apps) != 1 || out.Apps[0].Name != "database" || out.Apps[0].Mode != "singleton" || out.Apps[0].Backend.Systemd.Unit != "x.service" || out.Apps[0].Restart.Interval != 300e9 {
		t.Errorf("apps: %+v", out.Apps)
	}

	code, stdout, _ = gcl(t, "job", "inspect", job)
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	mustContain(t, "text inspect", stdout, `app "database" {`, `mode = "singleton"`, `unit = "pg.service"`, `interval = "5m"`)
	rendered := writeJob(t, dir, "rendered.hcl", stdout)
	if code, _, stderr := gcl(t, "job", "validate", rendered); code != 0 {
		t.Errorf("inspect output does not validate:\n%s", stderr)
	}

	invalid := writeJob(t, dir, "invalid.hcl", invalidJob)
	code, stdout, stderr := gcl(t, "job", "inspect", invalid)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "Unknown mode") {
		t.Errorf("invalid: code %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = gcl(t, "job", "inspect", "-json", invalid)
	if code != 1 || !strings.Contains(stdout, `"apps": null`) {
		t.Errorf("invalid -json: code %d\n%s", code, stdout)
	}
}

func TestFileFunctionsEnabledInCLI(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeJob(t, dir, "unit.txt", "from-file.service")
	writeJob(t, dir, "job.hcl", "app \"a\" {\n  backend \"systemd\" {\n    unit = trimspace(file(\"unit.txt\"))\n  }\n}\n")
	code, stdout, stderr := gcl(t, "job", "inspect", "job.hcl")
	if code != 0 || !strings.Contains(stdout, `unit = "from-file.service"`) {
		t.Errorf("code %d\n%s%s", code, stdout, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := [][]string{
		{"job", "validate"},
		{"job", "inspect"},
		{"job", "validate", "/nonexistent/job.hcl"},
		{"job", "validate", "-bogus", "x.hcl"},
		{"fmt", "-check", "-write", "."},
		{"nosuchcommand"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if code, _, _ := gcl(t, args...); code != 1 {
				t.Errorf("code %d, want 1", code)
			}
		})
	}
}

func TestHelpShowsExamplesAndExitCodes(t *testing.T) {
	for _, args := range [][]string{
		{"--help"},
		{"job", "--help"},
		{"job", "validate", "--help"},
		{"job", "inspect", "-h"},
		{"fmt", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, _ := gcl(t, args...)
			if code != 0 {
				t.Errorf("code %d", code)
			}
			mustContain(t, "help", stdout, "gcl ")
			if args[len(args)-1] != "--help" || len(args) > 1 {
				return
			}
			mustContain(t, "help", stdout, "EXIT CODES", "0  success", "1  invalid")
		})
	}
	_, stdout, _ := gcl(t, "job", "validate", "--help")
	mustContain(t, "validate help", stdout, "gcl job validate examples/jobs/database.hcl", "EXIT CODES", "GCL_VAR_NAME")
	_, stdout, _ = gcl(t, "fmt", "--help")
	mustContain(t, "fmt help", stdout, "gcl fmt -check jobs", "EXIT CODES")
}

// TestExampleJobs runs validate over examples/jobs as a user would.
func TestExampleJobs(t *testing.T) {
	code, stdout, stderr := gcl(t, "job", "validate", "../../examples/jobs")
	if code != 0 {
		t.Fatalf("examples invalid:\n%s", stderr)
	}
	mustContain(t, "stdout", stdout, "database", "cache", "api", "worker")
	if code, stdout, _ := gcl(t, "fmt", "-check", "../../examples/jobs"); code != 0 {
		t.Errorf("examples are not formatted:\n%s", stdout)
	}
}

func TestValidateSameFileTwice(t *testing.T) {
	dir := t.TempDir()
	job := writeJob(t, dir, "job.hcl", validJob)
	if code, _, stderr := gcl(t, "job", "validate", job, dir); code != 0 {
		t.Errorf("a file reached twice clashed with itself:\n%s", stderr)
	}
}
