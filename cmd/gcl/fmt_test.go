package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const unformatted = "app \"db\" {\nmode=\"singleton\"\n    vip   =  \"10.0.0.1/24\"\n}\n"
const formatted = "app \"db\" {\n  mode = \"singleton\"\n  vip  = \"10.0.0.1/24\"\n}\n"

func readFile(t *testing.T, path string) string {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(content)
}

func TestFmtPrintsOneFile(t *testing.T) {
	path := writeJob(t, t.TempDir(), "db.hcl", unformatted)
	code, stdout, _ := gcl(t, "fmt", path)
	if code != 0 || stdout != formatted {
		t.Errorf("code %d, stdout:\n%s", code, stdout)
	}
	if readFile(t, path) != unformatted {
		t.Error("fmt without -write changed the file")
	}
}

func TestFmtCheck(t *testing.T) {
	dir := t.TempDir()
	bad := writeJob(t, dir, "a.hcl", unformatted)
	writeJob(t, dir, "b.hcl", formatted)
	writeJob(t, dir, "c.hcl.json", `{"app":{}}`)

	code, stdout, _ := gcl(t, "fmt", "-check", dir)
	if code != 1 || stdout != bad+"\n" {
		t.Errorf("check: code %d, stdout %q", code, stdout)
	}
	if readFile(t, bad) != unformatted {
		t.Error("-check changed a file")
	}
	code, stdout, _ = gcl(t, "fmt", "-check", filepath.Join(dir, "b.hcl"))
	if code != 0 || stdout != "" {
		t.Errorf("check of a formatted file: code %d, stdout %q", code, stdout)
	}
}

func TestFmtWrite(t *testing.T) {
	dir := t.TempDir()
	bad := writeJob(t, dir, "a.hcl", unformatted)
	good := writeJob(t, dir, "b.hcl", formatted)
	if err := os.Chmod(bad, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(good)

	code, stdout, _ := gcl(t, "fmt", "-write", dir)
	if code != 0 || stdout != bad+"\n" {
		t.Errorf("write: code %d, stdout %q", code, stdout)
	}
	if got := readFile(t, bad); got != formatted {
		t.Errorf("rewritten file:\n%s", got)
	}
	if info, _ := os.Stat(bad); info.Mode().Perm() != 0o600 {
		t.Errorf("mode changed to %v", info.Mode().Perm())
	}
	if after, _ := os.Stat(good); !after.ModTime().Equal(before.ModTime()) {
		t.Error("an already formatted file was rewritten")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if code, _, _ := gcl(t, "fmt", "-check", dir); code != 0 {
		t.Errorf("still unformatted after -write")
	}
}

func TestFmtListsChangedFilesForSeveral(t *testing.T) {
	dir := t.TempDir()
	bad := writeJob(t, dir, "a.hcl", unformatted)
	good := writeJob(t, dir, "b.hcl", formatted)
	code, stdout, _ := gcl(t, "fmt", bad, good)
	if code != 0 || stdout != bad+"\n" {
		t.Errorf("code %d, stdout %q", code, stdout)
	}
}

func TestFmtSyntaxError(t *testing.T) {
	dir := t.TempDir()
	broken := writeJob(t, dir, "broken.hcl", "app \"db\" {\n  mode = \n}\n")
	bad := writeJob(t, dir, "a.hcl", unformatted)
	code, stdout, stderr := gcl(t, "fmt", "-write", dir)
	if code != 1 {
		t.Errorf("code %d", code)
	}
	mustContain(t, "stderr", stderr, "Error: ", broken+":")
	if stdout != bad+"\n" || readFile(t, bad) != formatted {
		t.Errorf("the valid file must still be formatted: stdout %q", stdout)
	}
	if readFile(t, broken) != "app \"db\" {\n  mode = \n}\n" {
		t.Error("a file with syntax errors was rewritten")
	}
}

func TestFmtJSON(t *testing.T) {
	dir := t.TempDir()
	bad := writeJob(t, dir, "a.hcl", unformatted)
	writeJob(t, dir, "b.hcl", formatted)
	broken := writeJob(t, dir, "c.hcl", "app {\n")
	code, stdout, _ := gcl(t, "fmt", dir, "-json", "-check")
	if code != 1 {
		t.Errorf("code %d", code)
	}
	var out struct {
		Files []struct {
			Path    string `json:"path"`
			Changed bool   `json:"changed"`
			Written bool   `json:"written"`
		} `json:"files"`
		Diagnostics []struct {
			Range struct{ Filename string } `json:"range"`
		} `json:"diagnostics"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if len(out.Files) != 2 || out.Files[0].Path != bad || !out.Files[0].Changed || out.Files[1].Changed || out.Files[0].Written {
		t.Errorf("files: %+v", out.Files)
	}
	if len(out.Diagnostics) == 0 || out.Diagnostics[0].Range.Filename != broken {
		t.Errorf("diagnostics: %+v", out.Diagnostics)
	}
}

func TestFmtDefaultsToCurrentDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeJob(t, dir, "a.hcl", unformatted)
	code, stdout, _ := gcl(t, "fmt", "-check")
	if code != 1 || !strings.Contains(stdout, "a.hcl") {
		t.Errorf("code %d, stdout %q", code, stdout)
	}
}
