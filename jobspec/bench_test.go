package jobspec

import (
	"fmt"
	"strings"
	"testing"
)

// generatedJob is a job file of n apps cycling through the four modes, each
// with a backend, placement rules, a service with a check and meta, plus a
// variable and a local used by every app: a large but realistic file.
func generatedJob(n int) []byte {
	var b strings.Builder
	b.WriteString("variable \"env\" {\n  default = \"prod\"\n}\n\nlocals {\n  zone = \"eu-1\"\n}\n")
	for i := range n {
		fmt.Fprintf(&b, "\napp \"${var.env}-app-%d\" {\n", i)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "  mode = \"singleton\"\n  vip {\n    address   = \"10.%d.%d.10/24\"\n    interface = \"eth0\"\n  }\n  sqlite = \"/data/app-%d.db\"\n", i/256%256, i%256, i)
		case 1:
			b.WriteString("  mode = \"spread\"\n")
		case 2:
			b.WriteString("  mode  = \"replicas\"\n  count = 3\n")
		case 3:
			b.WriteString("  mode       = \"ring\"\n  partitions = 64\n")
		}
		fmt.Fprintf(&b, `  backend "exec" {
    command      = "/usr/bin/app"
    args         = ["--id", "%d", upper(var.env)]
    env          = { ZONE = local.zone }
    kill_timeout = "5s"
  }
  constraint {
    attribute = "node.labels.zone"
    operator  = "regexp"
    value     = "^${local.zone}"
  }
  affinity {
    attribute = "node.labels.disk"
    value     = "ssd"
    weight    = 20
  }
  service "http" {
    port = %d
    check {
      type     = "http"
      path     = "/health"
      interval = "10s"
      timeout  = "1s"
    }
  }
  restart {
    attempts = 3
    delay    = "1s"
  }
  meta {
    index = %d
  }
}
`, i, 8000+i%1000, i)
	}
	return []byte(b.String())
}

func BenchmarkParseValidate1000Apps(b *testing.B) {
	src := generatedJob(1000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		result, diags := Parse("bench.hcl", src)
		if diags.HasErrors() || len(result.Apps) != 1000 {
			b.Fatalf("%d apps, diagnostics: %v", len(result.Apps), diags)
		}
	}
}

func TestGeneratedJobIsValid(t *testing.T) {
	apps, _ := parseValid(t, "bench.hcl", string(generatedJob(8)))
	if len(apps) != 8 || apps[7].Name != "prod-app-7" || apps[3].Mode != ModeRing {
		t.Errorf("generated job decodes unexpectedly: %d apps", len(apps))
	}
}
