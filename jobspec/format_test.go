package jobspec

import "testing"

func TestFormat(t *testing.T) {
	src := "app \"${var.env}-db\" {\nmode=\"singleton\"\n  vip   =   \"10.0.0.1/24\"\n    backend \"systemd\" {\n unit=\"x\"\n}\n}\n"
	want := "app \"${var.env}-db\" {\n  mode = \"singleton\"\n  vip  = \"10.0.0.1/24\"\n  backend \"systemd\" {\n    unit = \"x\"\n  }\n}\n"
	got, diags := Format("job.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("diagnostics: %v", diags)
	}
	if string(got) != want {
		t.Errorf("formatted:\n%s\nwant:\n%s", got, want)
	}
	again, _ := Format("job.hcl", got)
	if string(again) != string(got) {
		t.Errorf("formatting is not idempotent:\n%s", again)
	}
}

func TestFormatRefusesBrokenAndJSON(t *testing.T) {
	if out, diags := Format("job.hcl", []byte("app \"x\" {\n  mode = \n")); !diags.HasErrors() || out != nil {
		t.Errorf("syntax error: out=%q diags=%v", out, diags)
	}
	if out, diags := Format("job.hcl.json", []byte(`{"app": {}}`)); !diags.HasErrors() || out != nil {
		t.Errorf("JSON: out=%q diags=%v", out, diags)
	}
}
