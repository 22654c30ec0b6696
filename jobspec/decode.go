package jobspec

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Limits of numeric settings. They keep obvious typos (count = 30000) from
// reaching the scheduler, not hardware limits.
const (
	maxCount       = 10000
	maxPartitions  = 65536
	maxARPCount    = 100
	maxAttempts    = 1000
	maxMaxParallel = 1000
	maxNameLength  = 63
)

var modeNames = []string{string(ModeSingleton), string(ModeSpread), string(ModeReplicas), string(ModeRing)}

var backendTypes = []string{string(BackendExec), string(BackendSystemd)}

var serviceProtocols = []string{"tcp", "udp", "http", "https", "grpc"}

var checkTypes = []string{string(CheckHTTP), string(CheckTCP)}

var restartModes = []string{string(RestartFail), string(RestartDelay)}

// killSignals are the signals that make sense as a first, polite stop
// request; SIGKILL is allowed for programs that cannot shut down cleanly.
var killSignals = []string{"SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGKILL"}

// namePattern limits app and service names to what is safe in NATS
// subjects and KV keys, where '.', '*' and '>' carry meaning.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// decodedApp is an App together with the source ranges that the checks
// across attributes and across apps (validate.go) point at.
type decodedApp struct {
	app   *App
	label hcl.Range
	// attrs are the app-level attributes as written.
	attrs hcl.Attributes
	// blocks holds the first block of each type that may appear only once.
	blocks map[string]*hcl.Block
}

// decodeApp decodes the body of one app block whose name label is already
// evaluated.
func (d *decoder) decodeApp(block *hcl.Block, name string) *decodedApp {
	content, diags := block.Body.Content(appSchema(block.Body))
	d.diags = append(d.diags, diags...)
	app := &App{
		Name:    name,
		Mode:    ModeSingleton,
		Restart: Restart{Attempts: DefaultRestartAttempts, Interval: DefaultRestartInterval, Delay: DefaultRestartDelay, Mode: DefaultRestartMode},
		Update:  Update{MaxParallel: DefaultMaxParallel, MinHealthyTime: DefaultMinHealthyTime, HealthyDeadline: DefaultHealthyDeadline},
		Source:  Location{Filename: block.DefRange.Filename, Line: block.DefRange.Start.Line, Column: block.DefRange.Start.Column},
	}
	decoded := &decodedApp{app: app, label: block.LabelRanges[0], attrs: content.Attributes, blocks: map[string]*hcl.Block{}}

	if attr := content.Attributes["mode"]; attr != nil {
		// An unknown mode leaves Mode empty, so checks that depend on the
		// mode (validate.go) do not pile guesses on top of the error.
		mode, _ := d.oneOf(attr, "mode", modeNames)
		app.Mode = Mode(mode)
	}
	app.Count, _ = d.intInRange(content.Attributes["count"], 1, maxCount)
	app.Partitions, _ = d.intInRange(content.Attributes["partitions"], 1, maxPartitions)
	app.AwayFrom = d.appNames(content.Attributes["away_from"])
	app.Near = d.appNames(content.Attributes["near"])

	serviceNames := map[string]*hcl.Block{}
	for _, b := range content.Blocks {
		switch b.Type {
		case "backend":
			if d.firstOfType(decoded.blocks, b) {
				app.Backend = d.decodeBackend(b)
			}
		case "vip":
			if d.firstOfType(decoded.blocks, b) {
				app.VIP = d.decodeVIPBlock(b)
			}
		case "sqlite":
			if d.firstOfType(decoded.blocks, b) {
				app.SQLite = d.decodeSQLiteBlock(b)
			}
		case "restart":
			if d.firstOfType(decoded.blocks, b) {
				d.decodeRestart(b, &app.Restart)
			}
		case "update":
			if d.firstOfType(decoded.blocks, b) {
				d.decodeUpdate(b, &app.Update)
			}
		case "meta":
			if d.firstOfType(decoded.blocks, b) {
				app.Meta = d.decodeMeta(b)
			}
		case "constraint":
			app.Constraints = append(app.Constraints, d.decodeConstraint(b))
		case "affinity":
			app.Affinities = append(app.Affinities, d.decodeAffinity(b))
		case "spread":
			app.Spreads = append(app.Spreads, d.decodeSpread(b))
		case "service":
			if first, dup := serviceNames[b.Labels[0]]; dup {
				d.diags = append(d.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate service",
					Detail:   fmt.Sprintf("The service %q is already declared at %s.", b.Labels[0], location(first.DefRange)),
					Subject:  b.LabelRanges[0].Ptr(),
				})
				continue
			}
			serviceNames[b.Labels[0]] = b
			app.Services = append(app.Services, d.decodeService(b))
		}
	}
	app.VIP = shorthand(d, decoded, "vip", app.VIP, d.decodeVIPShorthand)
	app.SQLite = shorthand(d, decoded, "sqlite", app.SQLite, d.decodeSQLiteShorthand)
	return decoded
}

// firstOfType records b as the block of its type and reports any second one.
func (d *decoder) firstOfType(seen map[string]*hcl.Block, b *hcl.Block) bool {
	if first, dup := seen[b.Type]; dup {
		d.diags = append(d.diags, duplicateBlock(first, b))
		return false
	}
	seen[b.Type] = b
	return true
}

// shorthand decodes the attribute form of a setting that may also be
// written as a block, refusing both at once.
func shorthand[T any](d *decoder, decoded *decodedApp, name string, fromBlock *T, decode func(*hcl.Attribute) *T) *T {
	attr := decoded.attrs[name]
	if attr == nil {
		return fromBlock
	}
	if block := decoded.blocks[name]; block != nil {
		d.errorf(attr, "Duplicate "+name, "The %s is set both by this attribute and by the %s block at %s; keep one of them.", name, name, location(block.DefRange))
		return fromBlock
	}
	return decode(attr)
}

func (d *decoder) decodeBackend(b *hcl.Block) *Backend {
	kind := b.Labels[0]
	switch BackendType(kind) {
	case BackendExec:
		return &Backend{Type: BackendExec, Exec: d.decodeExecBackend(b.Body)}
	case BackendSystemd:
		return &Backend{Type: BackendSystemd, Systemd: d.decodeSystemdBackend(b.Body)}
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Unknown backend type",
		Detail:   fmt.Sprintf("%q is not a backend type; expected %s.%s", kind, quotedList(backendTypes), didYouMean(kind, backendTypes)),
		Subject:  b.LabelRanges[0].Ptr(),
	})
	return nil
}

func (d *decoder) decodeExecBackend(body hcl.Body) *ExecBackend {
	content, diags := body.Content(execBackendSchema)
	d.diags = append(d.diags, diags...)
	exec := &ExecBackend{KillSignal: DefaultKillSignal, KillTimeout: DefaultKillTimeout}
	exec.Command, _ = d.nonEmptyString(content.Attributes["command"])
	exec.Args, _ = d.strings(content.Attributes["args"])
	if attr := content.Attributes["env"]; attr != nil {
		exec.Env, _ = d.stringMap(attr)
		for key := range exec.Env {
			if key == "" || strings.ContainsAny(key, "=\x00") {
				d.errorf(attr, "Invalid environment variable name", "%q cannot be an environment variable name: it must be non-empty and contain no '=' or NUL.", key)
			}
		}
	}
	if attr := content.Attributes["dir"]; attr != nil {
		if dir, ok := d.nonEmptyString(attr); ok {
			exec.Dir = dir
			if !filepath.IsAbs(dir) {
				d.errorf(attr, "Relative working directory", "The working directory %q must be an absolute path: the agent's own directory differs from node to node.", dir)
			}
		}
	}
	exec.User, _ = d.string(content.Attributes["user"])
	if attr := content.Attributes["kill_signal"]; attr != nil {
		if signal, ok := d.string(attr); ok {
			exec.KillSignal = d.killSignal(attr, signal)
		}
	}
	if timeout, ok := d.duration(content.Attributes["kill_timeout"], true); ok {
		exec.KillTimeout = timeout
	}
	return exec
}

// killSignal normalizes "term", "TERM" and "SIGTERM" to "SIGTERM".
func (d *decoder) killSignal(attr *hcl.Attribute, signal string) string {
	name := strings.ToUpper(signal)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	for _, known := range killSignals {
		if name == known {
			return name
		}
	}
	d.errorf(attr, "Unknown signal", "%q is not a signal an app can be stopped with; expected %s.%s", signal, quotedList(killSignals), didYouMean(name, killSignals))
	return DefaultKillSignal
}

func (d *decoder) decodeSystemdBackend(body hcl.Body) *SystemdBackend {
	content, diags := body.Content(systemdBackendSchema)
	d.diags = append(d.diags, diags...)
	systemd := &SystemdBackend{}
	if attr := content.Attributes["unit"]; attr != nil {
		if unit, ok := d.nonEmptyString(attr); ok {
			systemd.Unit = unit
			if strings.ContainsAny(unit, "/ \t\n") {
				d.errorf(attr, "Invalid unit name", "%q is not a systemd unit name: it must not contain '/' or whitespace.", unit)
			}
		}
	}
	return systemd
}

func (d *decoder) decodeVIPBlock(b *hcl.Block) *VIP {
	content, diags := b.Body.Content(vipSchema)
	d.diags = append(d.diags, diags...)
	vip := d.decodeVIPShorthand(content.Attributes["address"])
	if vip == nil {
		return nil
	}
	if attr := content.Attributes["interface"]; attr != nil {
		if name, ok := d.nonEmptyString(attr); ok {
			vip.Interface = name
			// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
			if len(name) > 15 || strings.ContainsAny(name, "/ \t\n:") {
				d.errorf(attr, "Invalid interface name", "%q is not a network interface name: at most 15 characters, without '/', ':' or whitespace.", name)
			}
		}
	}
	if n, ok := d.intInRange(content.Attributes["arp_count"], 0, maxARPCount); ok {
		vip.ARPCount = n
	}
	if vip.Interface == "" {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "VIP interface will be inferred",
			Detail:   "No interface is given, so each node adds the VIP to its interface whose subnet contains the address. Nodes without such an interface cannot hold the VIP.",
			Subject:  b.DefRange.Ptr(),
		})
	}
	return vip
}

// decodeVIPShorthand decodes `vip = "ADDRESS/PREFIX"`, also used for the
// address attribute of the block form.
func (d *decoder) decodeVIPShorthand(attr *hcl.Attribute) *VIP {
	s, ok := d.nonEmptyString(attr)
	if !ok {
		return nil
	}
	prefix, err := netip.ParsePrefix(s)
	if err != nil {
		d.errorf(attr, "Invalid VIP address", "%q is not an address with a prefix length, such as \"10.0.1.100/24\": the prefix length selects the subnet and so the interface.", s)
		return nil
	}
	addr := prefix.Addr()
	switch {
	case addr.IsUnspecified(), addr.IsLoopback(), addr.IsMulticast():
		d.errorf(attr, "Invalid VIP address", "%s cannot be a VIP: unspecified, loopback and multicast addresses are not reachable from other hosts.", addr)
		return nil
	case addr.Is4() && prefix.Bits() < 31 && addr == prefix.Masked().Addr():
		d.errorf(attr, "Invalid VIP address", "%s is the network address of %s, not a host address.", addr, prefix.Masked())
		return nil
	}
	vip := &VIP{Address: prefix, ARPCount: DefaultARPCount}
	if attr.Name == "vip" {
		d.warnf(attr, "VIP interface will be inferred", "The shorthand names no interface, so each node adds the VIP to its interface whose subnet contains %s. Use a vip block with interface to choose one.", prefix.Masked())
	}
	return vip
}

func (d *decoder) decodeSQLiteBlock(b *hcl.Block) *SQLite {
	content, diags := b.Body.Content(sqliteSchema)
	d.diags = append(d.diags, diags...)
	db := d.decodeSQLiteShorthand(content.Attributes["path"])
	if db == nil {
		return nil
	}
	if interval, ok := d.duration(content.Attributes["snapshot_interval"], false); ok {
		db.SnapshotInterval = interval
	}
	if attr := content.Attributes["retention"]; attr != nil {
		if retention, ok := d.duration(attr, false); ok {
			db.Retention = retention
			if retention < db.SnapshotInterval {
				d.errorf(attr, "Retention shorter than snapshot interval", "A retention of %s would drop every snapshot before the next one is taken (snapshot_interval is %s).", retention, db.SnapshotInterval)
			}
		}
	}
	return db
}

// decodeSQLiteShorthand decodes `sqlite = "/path/app.db"`, also used for the
// path attribute of the block form.
func (d *decoder) decodeSQLiteShorthand(attr *hcl.Attribute) *SQLite {
	path, ok := d.nonEmptyString(attr)
	if !ok {
		return nil
	}
	if !filepath.IsAbs(path) {
		d.errorf(attr, "Relative database path", "The database path %q must be absolute: the agent's own directory differs from node to node.", path)
		return nil
	}
	return &SQLite{Path: path, SnapshotInterval: DefaultSnapshotInterval, Retention: DefaultRetention}
}

func (d *decoder) decodeService(b *hcl.Block) Service {
	name := b.Labels[0]
	if !validName(name) {
		d.diags = append(d.diags, invalidName("service", name, b.LabelRanges[0]))
	}
	content, diags := b.Body.Content(serviceSchema)
	d.diags = append(d.diags, diags...)
	service := Service{Name: name, Protocol: DefaultServiceProtocol}
	service.Port, _ = d.intInRange(content.Attributes["port"], 1, 65535)
	if protocol, ok := d.oneOf(content.Attributes["protocol"], "protocol", serviceProtocols); ok {
		service.Protocol = protocol
	}
	service.Tags, _ = d.strings(content.Attributes["tags"])
	var first *hcl.Block
	for _, cb := range content.Blocks {
		if first != nil {
			d.diags = append(d.diags, duplicateBlock(first, cb))
			continue
		}
		first = cb
		service.Check = d.decodeCheck(cb, service.Protocol)
	}
	return service
}

func (d *decoder) decodeCheck(b *hcl.Block, protocol string) *Check {
	content, diags := b.Body.Content(checkSchema)
	d.diags = append(d.diags, diags...)
	check := &Check{Interval: DefaultCheckInterval, Timeout: DefaultCheckTimeout}
	if kind, ok := d.oneOf(content.Attributes["type"], "check type", checkTypes); ok {
		check.Type = CheckType(kind)
	}
	if check.Type == CheckTCP && protocol == "udp" {
		d.errorf(content.Attributes["type"], "TCP check on a UDP service", "A tcp check connects over TCP, which a UDP service does not accept.")
	}
	if check.Type == CheckHTTP {
		check.Path = DefaultCheckPath
	}
	if attr := content.Attributes["path"]; attr != nil {
		if path, ok := d.string(attr); ok {
			switch {
			case check.Type == CheckTCP:
				d.errorf(attr, "Path on a TCP check", "Only http checks request a path; remove path or use type = \"http\".")
			case !strings.HasPrefix(path, "/"):
				d.errorf(attr, "Invalid check path", "The HTTP path %q must start with \"/\".", path)
			default:
				check.Path = path
			}
		}
	}
	if interval, ok := d.duration(content.Attributes["interval"], false); ok {
		check.Interval = interval
	}
	if attr := content.Attributes["timeout"]; attr != nil {
		if timeout, ok := d.duration(attr, false); ok {
			check.Timeout = timeout
			if timeout >= check.Interval {
				d.errorf(attr, "Check timeout too long", "The timeout (%s) must be shorter than the interval (%s), or checks would overlap.", timeout, check.Interval)
			}
		}
	}
	return check
}

func (d *decoder) decodeRestart(b *hcl.Block, restart *Restart) {
	content, diags := b.Body.Content(restartSchema)
	d.diags = append(d.diags, diags...)
	if n, ok := d.intInRange(content.Attributes["attempts"], 0, maxAttempts); ok {
		restart.Attempts = n
	}
	if interval, ok := d.duration(content.Attributes["interval"], false); ok {
		restart.Interval = interval
	}
	if delay, ok := d.duration(content.Attributes["delay"], true); ok {
		restart.Delay = delay
	}
	if mode, ok := d.oneOf(content.Attributes["mode"], "restart mode", restartModes); ok {
		restart.Mode = RestartMode(mode)
	}
}

func (d *decoder) decodeUpdate(b *hcl.Block, update *Update) {
	content, diags := b.Body.Content(updateSchema)
	d.diags = append(d.diags, diags...)
	if n, ok := d.intInRange(content.Attributes["max_parallel"], 1, maxMaxParallel); ok {
		update.MaxParallel = n
	}
	if wait, ok := d.duration(content.Attributes["min_healthy_time"], true); ok {
		update.MinHealthyTime = wait
	}
	if attr := content.Attributes["healthy_deadline"]; attr != nil {
		if deadline, ok := d.duration(attr, false); ok {
			update.HealthyDeadline = deadline
			if deadline <= update.MinHealthyTime {
				d.errorf(attr, "Healthy deadline too short", "The healthy_deadline (%s) must be longer than min_healthy_time (%s), or no instance could ever pass.", deadline, update.MinHealthyTime)
			}
		}
	}
}

// decodeMeta reads the free-form meta block; numbers and bools are kept as
// their string form since meta is text for operators and tools.
func (d *decoder) decodeMeta(b *hcl.Block) map[string]string {
	attrs, diags := b.Body.JustAttributes()
	d.diags = append(d.diags, diags...)
	meta := make(map[string]string, len(attrs))
	for name, attr := range attrs {
		// JSON allows any property name; keys must stay writable as HCL
		// attribute names (gcl job inspect renders them).
		if !hclsyntax.ValidIdentifier(name) {
			d.errorf(attr, "Invalid meta key", "%q cannot be a meta key: use letters, digits, '_' and '-', starting with a letter.", name)
			continue
		}
		if value, ok := d.string(attr); ok {
			meta[name] = value
		}
	}
	return meta
}

// appNames decodes a list of references to other apps.
func (d *decoder) appNames(attr *hcl.Attribute) []string {
	names, _ := d.strings(attr)
	for _, name := range names {
		if !validName(name) {
			d.errorf(attr, "Invalid app name", "%q is not a valid app name: %s", name, nameRule)
		}
	}
	return names
}

const nameRule = "names start with a letter or digit, continue with letters, digits, '-' or '_', and are at most 63 characters long."

func validName(name string) bool {
	return len(name) <= maxNameLength && namePattern.MatchString(name)
}

func invalidName(what, name string, subject hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid " + what + " name",
		Detail:   fmt.Sprintf("%q is not a valid %s name: %s", name, what, nameRule),
		Subject:  subject.Ptr(),
	}
}
