package jobspec

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// precedenceJob shows var.unit as the systemd unit of its only app.
const precedenceJob = `
variable "unit" {
  default = "default.service"
}

app "db" {
  backend "systemd" {
    unit = var.unit
  }
}
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func env(values map[string]string) Option {
	return WithLookupEnv(func(key string) (string, bool) {
		v, ok := values[key]
		return v, ok
	})
}

// TestVariablePrecedence pins the documented order: default < GCL_VAR_ <
// -var-file (later files win) < -var.
func TestVariablePrecedence(t *testing.T) {
	dir := t.TempDir()
	first := writeFile(t, dir, "first.hcl", `unit = "first-file.service"`)
	second := writeFile(t, dir, "second.hcl.json", `{"unit": "second-file.service"}`)
	fromEnv := env(map[string]string{"GCL_VAR_unit": "env.service"})
	tests := []struct {
		name string
		opts []Option
		want string
	}{
		{"default", nil, "default.service"},
		{"environment over default", []Option{fromEnv}, "env.service"},
		{"var file over environment", []Option{fromEnv, WithVarFiles(first)}, "first-file.service"},
		{"later var file over earlier", []Option{WithVarFiles(first, second)}, "second-file.service"},
		{"-var over everything", []Option{fromEnv, WithVarFiles(first, second), WithVars(map[string]string{"unit": "cli.service"})}, "cli.service"},
		{"environment list", []Option{WithEnviron([]string{"PATH=/bin", "GCL_VAR_unit=environ.service"})}, "environ.service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps, _ := parseValid(t, "job.hcl", precedenceJob, tt.opts...)
			if got := apps[0].Backend.Systemd.Unit; got != tt.want {
				t.Errorf("unit = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEnvironmentIgnoredByDefault(t *testing.T) {
	t.Setenv("GCL_VAR_unit", "from-process-env.service")
	apps, _ := parseValid(t, "job.hcl", precedenceJob)
	if got := apps[0].Backend.Systemd.Unit; got != "default.service" {
		t.Errorf("unit = %q: the library must not read the process environment unless asked", got)
	}
}

func TestVariableTypesFromStrings(t *testing.T) {
	src := `
variable "count" {
  type = number
}

variable "args" {
  type = list(string)
}

variable "env" {
  type = map(string)
}

variable "verbose" {
  type = bool
}

variable "name" {}

app "${var.name}" {
  mode  = "replicas"
  count = var.count

  backend "exec" {
    command = "/usr/bin/worker"
    args    = concat(var.args, var.verbose ? ["-v"] : [])
    env     = var.env
  }
}
`
	apps, _ := parseValid(t, "job.hcl", src, WithVars(map[string]string{
		"count":   "4",
		"args":    `["--queue", "mail"]`,
		"env":     `{ LOG = "info" }`,
		"verbose": "true",
		"name":    "mailer",
	}))
	app := apps[0]
	if app.Name != "mailer" || app.Count != 4 {
		t.Errorf("name, count = %q, %d; want mailer, 4", app.Name, app.Count)
	}
	if want := []string{"--queue", "mail", "-v"}; !reflect.DeepEqual(app.Backend.Exec.Args, want) {
		t.Errorf("args = %q, want %q", app.Backend.Exec.Args, want)
	}
	if want := map[string]string{"LOG": "info"}; !reflect.DeepEqual(app.Backend.Exec.Env, want) {
		t.Errorf("env = %v, want %v", app.Backend.Exec.Env, want)
	}
}

func TestVariableErrors(t *testing.T) {
	job := `
variable "count" {
  type = number
  validation {
    condition     = var.count <= 5
    error_message = "At most five."
  }
}

app "w" {
  mode  = "replicas"
  count = var.count
  backend "exec" {
    command = "/usr/bin/w"
  }
}
`
	tests := []struct {
		name string
		opts []Option
		want []string
	}{
		{"required and missing", nil, []string{"No value for required variable", "-var count=VALUE", "GCL_VAR_count"}},
		{"not a number", []Option{WithVars(map[string]string{"count": "many"})}, []string{"Invalid value for variable", "-var count", "a number is required"}},
		{"fails validation", []Option{WithVars(map[string]string{"count": "9"})}, []string{"At most five.", "comes from -var count", "on job.hcl:2:1"}},
		{"undeclared with suggestion", []Option{WithVars(map[string]string{"count": "1", "cuont": "2"})}, []string{"Value for undeclared variable", `Did you mean "count"?`}},
		{"environment not a number", []Option{env(map[string]string{"GCL_VAR_count": "x"})}, []string{"the environment variable GCL_VAR_count"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertContains(t, parseInvalid(t, "job.hcl", job, tt.opts...), tt.want...)
		})
	}
}

func TestVarFileOnlyLiterals(t *testing.T) {
	dir := t.TempDir()
	varFile := writeFile(t, dir, "vars.hcl", `unit = upper("x")`)
	out := parseInvalid(t, "job.hcl", precedenceJob, WithVarFiles(varFile))
	assertContains(t, out, "Function calls not allowed")
}

func TestMissingVarFile(t *testing.T) {
	out := parseInvalid(t, "job.hcl", precedenceJob, WithVarFiles(filepath.Join(t.TempDir(), "absent.hcl")))
	assertContains(t, out, "Failed to read variable file", "absent.hcl")
}

func TestVariablesAreScopedToTheirFile(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.hcl", `
variable "unit" {
  default = "a.service"
}
app "a" {
  backend "systemd" {
    unit = var.unit
  }
}
`)
	b := writeFile(t, dir, "b.hcl", `
app "b" {
  backend "systemd" {
    unit = var.unit
  }
}
`)
	result, diags := ParseFiles([]string{a, b})
	if !diags.HasErrors() {
		t.Fatal("b.hcl used a variable declared only in a.hcl without an error")
	}
	assertContains(t, renderDiags(result, diags), "b.hcl:4:15", `an attribute named "unit"`)
}

func TestLocalsAndFunctions(t *testing.T) {
	src := `
variable "env" {
  default = "Staging"
}

variable "zones" {
  default = ["a", "b", "c"]
}

locals {
  # Declared before what it uses: locals resolve in dependency order.
  unit = format("%s-%s.service", local.prefix, join("-", local.picked))
}

locals {
  prefix = lower(var.env)
  picked = concat(slice(var.zones, 0, 2), ["z"])
  count  = max(length(var.zones), min(7, 2))
  owner  = coalesce(null, upper(var.env))
}

app "${local.prefix}-db" {
  mode  = "replicas"
  count = local.count

  backend "systemd" {
    unit = local.unit
  }

  meta {
    owner = local.owner
    title = title(local.prefix)
    zones = jsonencode(var.zones)
  }
}
`
	apps, _ := parseValid(t, "job.hcl", src)
	app := apps[0]
	if app.Name != "staging-db" || app.Count != 3 || app.Backend.Systemd.Unit != "staging-a-b-z.service" {
		t.Errorf("name, count, unit = %q, %d, %q", app.Name, app.Count, app.Backend.Systemd.Unit)
	}
	want := map[string]string{"owner": "STAGING", "title": "Staging", "zones": `["a","b","c"]`}
	if !reflect.DeepEqual(app.Meta, want) {
		t.Errorf("meta = %v, want %v", app.Meta, want)
	}
}

func TestLocalErrors(t *testing.T) {
	out := parseInvalid(t, "job.hcl", `
locals {
  a = local.b
  b = local.a
}

locals {
  a = 1
  c = local.a + 1
}
`)
	assertContains(t, out, "Duplicate local value", "Circular reference between locals")
}

func TestAppNameTemplates(t *testing.T) {
	tests := []struct {
		name, filename, src, want string
	}{
		{"interpolation", "job.hcl", `app "${var.env}-db" {`, "prod-db"},
		{"nested quotes", "job.hcl", `app "${format("%s-%s", var.env, "db")}" {`, "prod-db"},
		{"directive", "job.hcl", `app "db%{ if var.env == "prod" }-main%{ endif }" {`, "db-main"},
		{"literal", "job.hcl", `app "plain" {`, "plain"},
		{"unquoted", "job.hcl", `app plain {`, "plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "variable \"env\" {\n  default = \"prod\"\n}\n\n" + tt.src + "\n  vip = \"10.0.0.9/24\"\n}\n"
			apps, _ := parseValid(t, tt.filename, src)
			if apps[0].Name != tt.want {
				t.Errorf("name = %q, want %q", apps[0].Name, tt.want)
			}
		})
	}
}

func TestAppNameTemplateInJSON(t *testing.T) {
	src := `{
  "variable": {"env": {"default": "dev"}},
  "app": {"${var.env}-cache": {"mode": "ring", "partitions": 8, "sqlite": "/x.db", "backend": {"exec": {"command": "/bin/true"}}}}
}`
	result, diags := Parse("job.hcl.json", []byte(src))
	// sqlite on a ring is an error, which proves the app was decoded under
	// its evaluated name.
	assertContains(t, renderDiags(result, diags), `"sqlite" needs mode "singleton"`, "in app.${var.env}-cache")

	src = `{"variable": {"env": {"default": "dev"}}, "app": {"${var.env}-cache": {"vip": "10.0.0.1/24"}}}`
	apps, _ := parseValid(t, "job.json", src)
	if apps[0].Name != "dev-cache" {
		t.Errorf("name = %q, want dev-cache", apps[0].Name)
	}
}

// TestEscapedLabelIsLiteral checks that $${ stays text: the name is then
// invalid, and the error shows the text unevaluated.
func TestEscapedLabelIsLiteral(t *testing.T) {
	out := parseInvalid(t, "job.hcl", "app \"a$${b}\" {\n  vip = \"10.0.0.9/24\"\n}\n")
	assertContains(t, out, `"a${b}" is not a valid app name`)
}

func TestOnlyAppLabelsAreTemplates(t *testing.T) {
	out := parseInvalid(t, "job.hcl", "app \"a\" {\n  service \"${x}\" {\n    port = 1\n  }\n}\n")
	assertContains(t, out, "Invalid string literal")
}
