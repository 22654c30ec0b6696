package jobspec

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Render writes apps as a job file in canonical layout: every value
// resolved, every default spelled out. It shows exactly what a job means
// after variables, locals and defaults are applied (gcl job inspect), and
// parsing its output yields the same apps again.
func Render(apps []*App) []byte {
	file := hclwrite.NewEmptyFile()
	root := file.Body()
	for i, app := range apps {
		if i > 0 {
			root.AppendNewline()
		}
		renderApp(root.AppendNewBlock("app", []string{app.Name}).Body(), app)
	}
	return hclwrite.Format(file.Bytes())
}

func renderApp(body *hclwrite.Body, app *App) {
	setString(body, "mode", string(app.Mode))
	if app.Count > 0 {
		setInt(body, "count", app.Count)
	}
	if app.Partitions > 0 {
		setInt(body, "partitions", app.Partitions)
	}
	if len(app.AwayFrom) > 0 {
		setStrings(body, "away_from", app.AwayFrom)
	}
	if len(app.Near) > 0 {
		setStrings(body, "near", app.Near)
	}
	if app.Backend != nil {
		renderBackend(body, app.Backend)
	}
	if vip := app.VIP; vip != nil {
		b := newBlock(body, "vip", nil)
		setString(b, "address", vip.Address.String())
		if vip.Interface != "" {
			setString(b, "interface", vip.Interface)
		}
		setInt(b, "arp_count", vip.ARPCount)
	}
	if db := app.SQLite; db != nil {
		b := newBlock(body, "sqlite", nil)
		setString(b, "path", db.Path)
		setDuration(b, "snapshot_interval", db.SnapshotInterval)
		setDuration(b, "retention", db.Retention)
	}
	for _, c := range app.Constraints {
		b := newBlock(body, "constraint", nil)
		setOptionalString(b, "attribute", c.Attribute)
		setString(b, "operator", string(c.Operator))
		if c.Operator.takesValue() {
			setString(b, "value", c.Value)
		}
	}
	for _, a := range app.Affinities {
		b := newBlock(body, "affinity", nil)
		setString(b, "attribute", a.Attribute)
		setString(b, "operator", string(a.Operator))
		if a.Operator.takesValue() {
			setString(b, "value", a.Value)
		}
		setInt(b, "weight", a.Weight)
	}
	for _, s := range app.Spreads {
		b := newBlock(body, "spread", nil)
		setString(b, "attribute", s.Attribute)
		setInt(b, "weight", s.Weight)
	}
	for _, s := range app.Services {
		renderService(body, s)
	}
	restart := newBlock(body, "restart", nil)
	setInt(restart, "attempts", app.Restart.Attempts)
	setDuration(restart, "interval", app.Restart.Interval)
	setDuration(restart, "delay", app.Restart.Delay)
	setString(restart, "mode", string(app.Restart.Mode))
	update := newBlock(body, "update", nil)
	setInt(update, "max_parallel", app.Update.MaxParallel)
	setDuration(update, "min_healthy_time", app.Update.MinHealthyTime)
	setDuration(update, "healthy_deadline", app.Update.HealthyDeadline)
	if len(app.Meta) > 0 {
		meta := newBlock(body, "meta", nil)
		for _, key := range slices.Sorted(maps.Keys(app.Meta)) {
			setString(meta, key, app.Meta[key])
		}
	}
}

func renderBackend(body *hclwrite.Body, backend *Backend) {
	b := newBlock(body, "backend", []string{string(backend.Type)})
	switch {
	case backend.Exec != nil:
		exec := backend.Exec
		setString(b, "command", exec.Command)
		if len(exec.Args) > 0 {
			setStrings(b, "args", exec.Args)
		}
		if len(exec.Env) > 0 {
			env := make(map[string]cty.Value, len(exec.Env))
			for key, value := range exec.Env {
				env[key] = cty.StringVal(value)
			}
			b.SetAttributeValue("env", cty.MapVal(env))
		}
		setOptionalString(b, "dir", exec.Dir)
		setOptionalString(b, "user", exec.User)
		setString(b, "kill_signal", exec.KillSignal)
		setDuration(b, "kill_timeout", exec.KillTimeout)
	case backend.Systemd != nil:
		setString(b, "unit", backend.Systemd.Unit)
	}
}

func renderService(body *hclwrite.Body, s Service) {
	b := newBlock(body, "service", []string{s.Name})
	setInt(b, "port", s.Port)
	setString(b, "protocol", s.Protocol)
	if len(s.Tags) > 0 {
		setStrings(b, "tags", s.Tags)
	}
	if check := s.Check; check != nil {
		c := newBlock(b, "check", nil)
		setString(c, "type", string(check.Type))
		setOptionalString(c, "path", check.Path)
		setDuration(c, "interval", check.Interval)
		setDuration(c, "timeout", check.Timeout)
	}
}

func setString(body *hclwrite.Body, name, value string) {
	body.SetAttributeValue(name, cty.StringVal(value))
}

func setOptionalString(body *hclwrite.Body, name, value string) {
	if value != "" {
		setString(body, name, value)
	}
}

func setInt(body *hclwrite.Body, name string, value int) {
	body.SetAttributeValue(name, cty.NumberIntVal(int64(value)))
}

func setDuration(body *hclwrite.Body, name string, value time.Duration) {
	setString(body, name, formatDuration(value))
}

// formatDuration writes durations the way people do: "1h" and "1h30m"
// rather than time.Duration's "1h0m0s" and "1h30m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// newBlock appends a nested block, separated by a blank line from what
// precedes it, as in hand-written job files.
func newBlock(body *hclwrite.Body, typeName string, labels []string) *hclwrite.Body {
	body.AppendNewline()
	return body.AppendNewBlock(typeName, labels).Body()
}

func setStrings(body *hclwrite.Body, name string, values []string) {
	list := make([]cty.Value, len(values))
	for i, value := range values {
		list[i] = cty.StringVal(value)
	}
	body.SetAttributeValue(name, cty.ListVal(list))
}
