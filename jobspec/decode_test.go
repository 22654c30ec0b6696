package jobspec

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestDecodeSchemaElements(t *testing.T) {
	systemd := &Backend{Type: BackendSystemd, Systemd: &SystemdBackend{Unit: "x.service"}}
	tests := []struct {
		name string
		src  string
		want func(app *App)
	}{
		{
			name: "defaults",
			src: `app "db" {
				backend "systemd" { unit = "x.service" }
			}`,
			want: func(app *App) { app.Backend = systemd },
		},
		{
			name: "spread",
			src: `app "db" {
				mode = "spread"
				backend "systemd" { unit = "x.service" }
			}`,
			want: func(app *App) { app.Mode, app.Backend = ModeSpread, systemd },
		},
		{
			name: "replicas with count",
			src: `app "db" {
				mode  = "replicas"
				count = 3
				backend "systemd" { unit = "x.service" }
			}`,
			want: func(app *App) { app.Mode, app.Count, app.Backend = ModeReplicas, 3, systemd },
		},
		{
			name: "ring with partitions",
			src: `app "db" {
				mode       = "ring"
				partitions = 256
				backend "systemd" { unit = "x.service" }
			}`,
			want: func(app *App) { app.Mode, app.Partitions, app.Backend = ModeRing, 256, systemd },
		},
		{
			name: "exec backend",
			src: `app "api" {
				backend "exec" {
					command      = "/usr/bin/api"
					args         = ["--port", 8080]
					env          = { PORT = 8080, MODE = "prod" }
					dir          = "/srv/api"
					user         = "api"
					kill_signal  = "int"
					kill_timeout = "0s"
				}
			}`,
			want: func(app *App) {
				app.Backend = &Backend{Type: BackendExec, Exec: &ExecBackend{
					Command: "/usr/bin/api", Args: []string{"--port", "8080"},
					Env: map[string]string{"PORT": "8080", "MODE": "prod"},
					Dir: "/srv/api", User: "api", KillSignal: "SIGINT", KillTimeout: 0,
				}}
			},
		},
		{
			name: "exec backend defaults",
			src: `app "api" {
				backend "exec" { command = "api" }
			}`,
			want: func(app *App) {
				app.Backend = &Backend{Type: BackendExec, Exec: &ExecBackend{Command: "api", KillSignal: DefaultKillSignal, KillTimeout: DefaultKillTimeout}}
			},
		},
		{
			name: "vip shorthand",
			src:  `app "db" { vip = "10.0.1.100/24" }`,
			want: func(app *App) {
				app.VIP = &VIP{Address: netip.MustParsePrefix("10.0.1.100/24"), ARPCount: DefaultARPCount}
			},
		},
		{
			name: "vip block",
			src: `app "db" {
				vip {
					address   = "fd00::10/64"
					interface = "eth1"
					arp_count = 0
				}
			}`,
			want: func(app *App) {
				app.VIP = &VIP{Address: netip.MustParsePrefix("fd00::10/64"), Interface: "eth1", ARPCount: 0}
			},
		},
		{
			name: "sqlite shorthand",
			src:  `app "db" { sqlite = "/data/app.db" }`,
			want: func(app *App) {
				app.SQLite = &SQLite{Path: "/data/app.db", SnapshotInterval: DefaultSnapshotInterval, Retention: DefaultRetention}
			},
		},
		{
			name: "sqlite block",
			src: `app "db" {
				sqlite {
					path              = "/data/app.db"
					snapshot_interval = "15m"
					retention         = "168h"
				}
			}`,
			want: func(app *App) {
				app.SQLite = &SQLite{Path: "/data/app.db", SnapshotInterval: 15 * time.Minute, Retention: 168 * time.Hour}
			},
		},
		{
			name: "constraints with every operator",
			src: `app "db" {
				backend "systemd" { unit = "x.service" }
				constraint {
					attribute = "node.id"
					value     = "n1"
				}
				constraint {
					attribute = "node.address"
					operator  = "!="
					value     = "10.0.0.1"
				}
				constraint {
					attribute = "node.labels.cpus"
					operator  = "<"
					value     = 64
				}
				constraint {
					attribute = "node.labels.cpus"
					operator  = "<="
					value     = "32"
				}
				constraint {
					attribute = "meta.memory_gb"
					operator  = ">"
					value     = "4"
				}
				constraint {
					attribute = "meta.memory_gb"
					operator  = ">="
					value     = "8"
				}
				constraint {
					attribute = "node.labels.topology.kubernetes.io/zone"
					operator  = "regexp"
					value     = "^eu-"
				}
				constraint {
					attribute = "node.labels.kernel"
					operator  = "version"
					value     = ">= 5.10, < 7.0, != 6.1.0-rc1"
				}
				constraint {
					attribute = "node.labels.features"
					operator  = "set_contains"
					value     = "ssd, nvme"
				}
				constraint {
					attribute = "node.labels.gpu"
					operator  = "is_set"
				}
				constraint {
					attribute = "node.labels.maintenance"
					operator  = "is_not_set"
				}
				constraint {
					operator = "distinct_hosts"
				}
			}`,
			want: func(app *App) {
				app.Backend = systemd
				app.Constraints = []Constraint{
					{Attribute: "node.id", Operator: OpEqual, Value: "n1"},
					{Attribute: "node.address", Operator: OpNotEqual, Value: "10.0.0.1"},
					{Attribute: "node.labels.cpus", Operator: OpLess, Value: "64"},
					{Attribute: "node.labels.cpus", Operator: OpLessOrEqual, Value: "32"},
					{Attribute: "meta.memory_gb", Operator: OpGreater, Value: "4"},
					{Attribute: "meta.memory_gb", Operator: OpGreaterOrEqual, Value: "8"},
					{Attribute: "node.labels.topology.kubernetes.io/zone", Operator: OpRegexp, Value: "^eu-"},
					{Attribute: "node.labels.kernel", Operator: OpVersion, Value: ">= 5.10, < 7.0, != 6.1.0-rc1"},
					{Attribute: "node.labels.features", Operator: OpSetContains, Value: "ssd, nvme"},
					{Attribute: "node.labels.gpu", Operator: OpIsSet},
					{Attribute: "node.labels.maintenance", Operator: OpIsNotSet},
					{Operator: OpDistinctHosts},
				}
			},
		},
		{
			name: "affinities and spreads",
			src: `app "db" {
				backend "systemd" { unit = "x.service" }
				affinity {
					attribute = "node.labels.zone"
					value     = "eu-1a"
				}
				affinity {
					attribute = "node.labels.spot"
					operator  = "is_set"
					weight    = -100
				}
				spread {
					attribute = "node.labels.zone"
				}
				spread {
					attribute = "node.labels.rack"
					weight    = 10
				}
			}`,
			want: func(app *App) {
				app.Backend = systemd
				app.Affinities = []Affinity{
					{Attribute: "node.labels.zone", Operator: OpEqual, Value: "eu-1a", Weight: DefaultAffinityWeight},
					{Attribute: "node.labels.spot", Operator: OpIsSet, Weight: -100},
				}
				app.Spreads = []Spread{
					{Attribute: "node.labels.zone", Weight: DefaultSpreadWeight},
					{Attribute: "node.labels.rack", Weight: 10},
				}
			},
		},
		{
			name: "away_from and near",
			src: `app "db" {
				backend "systemd" { unit = "x.service" }
				away_from = ["batch", "etl"]
				near      = ["cache"]
			}
			app "batch" {
				backend "systemd" { unit = "x.service" }
			}`,
			want: func(app *App) {
				app.Backend = systemd
				app.AwayFrom = []string{"batch", "etl"}
				app.Near = []string{"cache"}
			},
		},
		{
			name: "services and checks",
			src: `app "api" {
				backend "systemd" { unit = "x.service" }
				service "http" {
					port     = 8080
					protocol = "http"
					tags     = ["public"]
					check {
						type = "http"
					}
				}
				service "admin" {
					port = 9000
					check {
						type     = "tcp"
						interval = "30s"
						timeout  = "5s"
					}
				}
				service "metrics" {
					port = 9100
				}
			}`,
			want: func(app *App) {
				app.Backend = systemd
				app.Services = []Service{
					{Name: "http", Port: 8080, Protocol: "http", Tags: []string{"public"}, Check: &Check{Type: CheckHTTP, Path: DefaultCheckPath, Interval: DefaultCheckInterval, Timeout: DefaultCheckTimeout}},
					{Name: "admin", Port: 9000, Protocol: DefaultServiceProtocol, Check: &Check{Type: CheckTCP, Interval: 30 * time.Second, Timeout: 5 * time.Second}},
					{Name: "metrics", Port: 9100, Protocol: DefaultServiceProtocol},
				}
			},
		},
		{
			name: "restart, update and meta",
			src: `app "db" {
				backend "systemd" { unit = "x.service" }
				restart {
					attempts = 0
					interval = "1m"
					delay    = "0s"
					mode     = "delay"
				}
				update {
					max_parallel     = 2
					min_healthy_time = "0s"
					healthy_deadline = "1m30s"
				}
				meta {
					owner   = "team-a"
					version = 3
					public  = true
				}
			}`,
			want: func(app *App) {
				app.Backend = systemd
				app.Restart = Restart{Attempts: 0, Interval: time.Minute, Delay: 0, Mode: RestartDelay}
				app.Update = Update{MaxParallel: 2, MinHealthyTime: 0, HealthyDeadline: 90 * time.Second}
				app.Meta = map[string]string{"owner": "team-a", "version": "3", "public": "true"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps, _ := parseValid(t, "job.hcl", tt.src)
			want := defaultApp(apps[0].Name)
			tt.want(want)
			got := withoutSource(apps)[0]
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded app differs\n got: %s\nwant: %s", toJSON(t, got), toJSON(t, want))
			}
		})
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestDecodeRecordsSource(t *testing.T) {
	apps, _ := parseValid(t, "jobs/db.hcl", "\n\napp \"db\" {\n  vip = \"10.0.0.5/24\"\n}\n")
	want := Location{Filename: "jobs/db.hcl", Line: 3, Column: 1}
	if apps[0].Source != want {
		t.Errorf("source = %+v, want %+v", apps[0].Source, want)
	}
}

func TestDecodeWarnings(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"vip shorthand infers interface", `app "db" { vip = "10.0.1.100/24" }`, []string{"VIP interface will be inferred"}},
		{"vip block without interface", "app \"db\" {\n vip { address = \"10.0.1.100/24\" }\n}", []string{"VIP interface will be inferred"}},
		{"vip block with interface", "app \"db\" {\n vip {\n address = \"10.0.1.100/24\"\n interface = \"eth0\"\n }\n}", nil},
		{"app without anything to run", `app "db" {}`, []string{"App runs nothing"}},
		{"reference to unknown app", "app \"db\" {\n sqlite = \"/d.db\"\n away_from = [\"web\"]\n}", []string{"Reference to an app not in these files"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := parseValid(t, "job.hcl", tt.src)
			if got := summaries(diags); !reflect.DeepEqual(got, tt.want) && (len(got) != 0 || len(tt.want) != 0) {
				t.Errorf("warnings = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestJSONSyntaxMatchesNative decodes the same job written in both syntaxes,
// including both forms of the shorthand settings.
func TestJSONSyntaxMatchesNative(t *testing.T) {
	native := `
app "database" {
  mode = "singleton"
  vip  = "10.0.1.100/24"

  sqlite {
    path      = "/data/app.db"
    retention = "48h"
  }

  backend "systemd" {
    unit = "postgresql.service"
  }

  constraint {
    attribute = "node.labels.disk"
    value     = "ssd"
  }

  constraint {
    operator = "distinct_hosts"
  }

  service "pg" {
    port = 5432
    check {
      type = "tcp"
    }
  }

  meta {
    owner = "dba"
  }
}

app "api" {
  mode      = "replicas"
  count     = 2
  away_from = ["database"]

  backend "exec" {
    command = "/usr/bin/api"
    args    = ["--listen", ":8080"]
    env     = { LOG = "debug" }
  }

  affinity {
    attribute = "node.labels.zone"
    value     = "a"
    weight    = -20
  }
}

app "ledger" {
  sqlite = "/data/ledger.db"
  vip {
    address   = "10.0.1.101/24"
    interface = "eth0"
  }
}
`
	jsonSrc := `{
  "app": {
    "database": {
      "mode": "singleton",
      "vip": "10.0.1.100/24",
      "sqlite": {"path": "/data/app.db", "retention": "48h"},
      "backend": {"systemd": {"unit": "postgresql.service"}},
      "constraint": [
        {"attribute": "node.labels.disk", "value": "ssd"},
        {"operator": "distinct_hosts"}
      ],
      "service": {"pg": {"port": 5432, "check": {"type": "tcp"}}},
      "meta": {"owner": "dba"}
    },
    "api": {
      "mode": "replicas",
      "count": 2,
      "away_from": ["database"],
      "backend": {"exec": {"command": "/usr/bin/api", "args": ["--listen", ":8080"], "env": {"LOG": "debug"}}},
      "affinity": {"attribute": "node.labels.zone", "value": "a", "weight": -20}
    },
    "ledger": {
      "sqlite": "/data/ledger.db",
      "vip": [{"address": "10.0.1.101/24", "interface": "eth0"}]
    }
  }
}`
	fromNative, _ := parseValid(t, "job.hcl", native)
	fromJSON, _ := parseValid(t, "job.hcl.json", jsonSrc)
	if len(fromNative) != 3 {
		t.Fatalf("decoded %d apps from native syntax, want 3", len(fromNative))
	}
	if got, want := toJSON(t, withoutSource(fromJSON)), toJSON(t, withoutSource(fromNative)); got != want {
		t.Errorf("JSON syntax decodes differently\n json: %s\nnative: %s", got, want)
	}
}
