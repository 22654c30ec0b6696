package jobspec

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFileFunctionsDisabledByDefault(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "start.sh", "echo hi")
	for _, call := range []string{
		`file("` + filepath.Join(dir, "start.sh") + `")`,
		`tostring(fileexists("` + filepath.Join(dir, "start.sh") + `"))`,
		`templatefile("` + filepath.Join(dir, "start.sh") + `", {})`,
	} {
		t.Run(call, func(t *testing.T) {
			src := "app \"a\" {\n  backend \"exec\" {\n    command = " + call + "\n  }\n}\n"
			out := parseInvalid(t, "job.hcl", src)
			assertContains(t, out, "Error in function call", "file functions are disabled")
		})
	}
}

func TestFileFunctionsEnabled(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "start.sh", "#!/bin/sh\nexec api\n")
	writeFile(t, dir, "unit.tmpl", "${name}-%{ for z in zones }${z}%{ endfor }.service")
	src := `
app "a" {
  backend "exec" {
    command = "/bin/sh"
    args = [
      file("start.sh"),
      tostring(fileexists("start.sh")),
      tostring(fileexists("missing.sh")),
      templatefile("unit.tmpl", { name = upper("db"), zones = ["a", "b"] }),
    ]
  }
}
`
	apps, _ := parseValid(t, "job.hcl", src, WithFileFunctions(dir))
	want := []string{"#!/bin/sh\nexec api\n", "true", "false", "DB-ab.service"}
	got := apps[0].Backend.Exec.Args
	if len(got) != len(want) {
		t.Fatalf("args = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("args[%d] = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestFileFunctionErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "recursive.tmpl", `${templatefile("recursive.tmpl", {})}`)
	tests := []struct{ call, want string }{
		{`file("missing.txt")`, "no such file"},
		{`templatefile("recursive.tmpl", {})`, `no function named "templatefile"`},
		{`templatefile("recursive.tmpl", "vars")`, "vars must be an object or a map"},
	}
	for _, tt := range tests {
		t.Run(tt.call, func(t *testing.T) {
			src := "app \"a\" {\n  backend \"exec\" {\n    command = " + tt.call + "\n  }\n}\n"
			assertContains(t, parseInvalid(t, "job.hcl", src, WithFileFunctions(dir)), tt.want)
		})
	}
}

// TestParsingExecutesNothing parses backends whose commands would leave a
// trace if anything ran them.
func TestParsingExecutesNothing(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	src := `
app "a" {
  backend "exec" {
    command = "/bin/sh"
    args    = ["-c", "touch ` + marker + `"]
  }
}

app "b" {
  mode = "spread"

  backend "systemd" {
    unit = "touch-` + filepath.Base(marker) + `.service"
  }
}
`
	parseValid(t, "job.hcl", src, WithFileFunctions(dir))
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("parsing ran a backend command (stat: %v)", err)
	}
	for name := range functionsFor(&config{fileFunctions: true}) {
		switch name {
		case "exec", "shell", "system", "run", "command":
			t.Errorf("a function named %q can run programs at parse time", name)
		}
	}
}
