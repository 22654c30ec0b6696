//go:build linux

package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Manager is a connection to one systemd manager that survives reconnects.
// Its methods are safe for concurrent use.
type Manager struct {
	cfg config
	log *slog.Logger

	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	closing chan struct{} // closed by Close
	wg      sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	cur     *generation   // nil while reconnecting
	genID   uint64        // id of the latest generation installed
	changed chan struct{} // closed and replaced whenever cur changes

	subsMu sync.Mutex
	subs   map[dbus.ObjectPath]map[*subscriber]struct{}
	all    map[*subscriber]struct{}
}

// Dial connects to systemd (the system manager unless an option says
// otherwise). The first connection must succeed within ctx; after that the
// Manager reconnects on its own until Close.
func Dial(ctx context.Context, opts ...Option) (*Manager, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	mctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg:     cfg,
		log:     cfg.logger,
		ctx:     mctx,
		cancel:  cancel,
		closing: make(chan struct{}),
		changed: make(chan struct{}),
		subs:    make(map[dbus.ObjectPath]map[*subscriber]struct{}),
		all:     make(map[*subscriber]struct{}),
	}
	g, err := m.connect(ctx, 1)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("systemd: connect to %s: %w", cfg.target.desc, err)
	}
	m.install(g)
	m.wg.Add(1)
	go m.supervise(g)
	m.log.Debug("systemd: connected", "target", cfg.target.desc)
	return m, nil
}

// Close closes the connections and stops reconnecting. Calls in flight fail
// with ErrClosed (or ErrDisconnected), watches end and close their channels.
// Units are left as they are.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.closing)
	g := m.cur
	m.cur = nil
	m.mu.Unlock()
	m.cancel()
	if g != nil {
		g.close()
	}
	m.wg.Wait()
	return nil
}

// generationID is the id of the latest generation installed.
func (m *Manager) generationID() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.genID
}

// goTracked runs f in a goroutine that Close waits for; false when closed.
func (m *Manager) goTracked(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

// UnitStatus is the state of a unit as systemd reports it.
type UnitStatus struct {
	Name        string // the unit's primary name (Id)
	LoadState   string // loaded, not-found, bad-setting, error, masked
	ActiveState string // active, reloading, inactive, failed, activating, deactivating
	SubState    string // type-specific: running, dead, exited, failed, auto-restart...
	// Result of the last run (success, exit-code, signal, core-dump,
	// timeout, ...); empty for unit types without one.
	Result string
	// MainPID of a service, 0 when it has none (or is not a service).
	MainPID uint32
	// ExecMainStatus of a service: the exit status (or signal number) of its
	// last main process.
	ExecMainStatus int32
}

func (s UnitStatus) String() string {
	str := fmt.Sprintf("%s %s/%s", s.Name, s.ActiveState, s.SubState)
	if s.LoadState != "" && s.LoadState != "loaded" {
		str += " load=" + s.LoadState
	}
	if s.MainPID != 0 {
		str += fmt.Sprintf(" pid=%d", s.MainPID)
	}
	if s.Result != "" && s.Result != "success" {
		str += " result=" + s.Result
	}
	return str
}

// IsActive reports whether the unit is active or reloading.
func (s UnitStatus) IsActive() bool {
	return s.ActiveState == "active" || s.ActiveState == "reloading"
}

// IsDown reports whether the unit is inactive or failed.
func (s UnitStatus) IsDown() bool {
	return s.ActiveState == "inactive" || s.ActiveState == "failed"
}

// apply sets the fields named in props (values as D-Bus returns them).
func (s *UnitStatus) apply(props map[string]any) {
	for k, v := range props {
		switch k {
		case "Id":
			if x, ok := v.(string); ok && x != "" {
				s.Name = x
			}
		case "LoadState":
			s.LoadState, _ = v.(string)
		case "ActiveState":
			s.ActiveState, _ = v.(string)
		case "SubState":
			s.SubState, _ = v.(string)
		case "Result":
			s.Result, _ = v.(string)
		case "MainPID":
			s.MainPID, _ = v.(uint32)
		case "ExecMainStatus":
			s.ExecMainStatus, _ = v.(int32)
		}
	}
}

func (s *UnitStatus) applyVariants(props map[string]dbus.Variant) {
	m := make(map[string]any, 8)
	for _, k := range []string{"Id", "LoadState", "ActiveState", "SubState", "Result", "MainPID", "ExecMainStatus"} {
		if v, ok := props[k]; ok {
			m[k] = v.Value()
		}
	}
	s.apply(m)
}

// unitTypes maps unit name suffixes to their D-Bus interface names.
var unitTypes = map[string]string{
	"service": "Service", "socket": "Socket", "device": "Device", "mount": "Mount",
	"automount": "Automount", "swap": "Swap", "target": "Target", "path": "Path",
	"timer": "Timer", "slice": "Slice", "scope": "Scope",
}

// normalize checks a unit name and adds ".service" when it has no unit
// type suffix (as systemctl does): "postgres" is "postgres.service".
func normalize(unit string) (string, error) {
	if unit == "" {
		return "", fmt.Errorf("%w: empty unit name", ErrInvalidUnit)
	}
	if strings.ContainsAny(unit, "/\x00") {
		return "", fmt.Errorf("%w: %q: not a unit name", ErrInvalidUnit, unit)
	}
	if i := strings.LastIndexByte(unit, '.'); i >= 0 {
		if _, ok := unitTypes[unit[i+1:]]; ok {
			return unit, nil
		}
	}
	return unit + ".service", nil
}

func unitType(name string) string {
	return unitTypes[name[strings.LastIndexByte(name, '.')+1:]]
}

func unitPath(name string) dbus.ObjectPath {
	return dbus.ObjectPath(unitPathPrefix + sddbus.PathBusEscape(name))
}

// Status reads a unit's state. A unit systemd does not know is reported
// with LoadState "not-found" (and ActiveState "inactive"), not as an error.
func (m *Manager) Status(ctx context.Context, unit string) (UnitStatus, error) {
	name, err := normalize(unit)
	if err != nil {
		return UnitStatus{}, err
	}
	g, err := m.conn(ctx)
	if err != nil {
		return UnitStatus{}, withOp("status "+name, err)
	}
	return m.status(ctx, g, name)
}

func (m *Manager) status(ctx context.Context, g *generation, name string) (UnitStatus, error) {
	st := UnitStatus{Name: name}
	props, err := g.sd.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return UnitStatus{}, m.callErr(g, "status "+name, err)
	}
	st.apply(props)
	if typ := unitType(name); typ != "" {
		tprops, err := g.sd.GetUnitTypePropertiesContext(ctx, name, typ)
		if err != nil && g.lost() {
			return UnitStatus{}, m.callErr(g, "status "+name, err)
		}
		if err == nil {
			delete(tprops, "Id")
			st.apply(tprops)
		}
	}
	return st, nil
}

// snapshot reads all of a unit's properties with one GetAll on the signal
// connection and returns them with the sequence number of the reply:
// signals numbered below it are older than the snapshot.
func (m *Manager) snapshot(ctx context.Context, g *generation, name string) (UnitStatus, dbus.Sequence, error) {
	call := g.sig.Object(systemdDest, unitPath(name)).CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, "")
	if call.Err != nil {
		return UnitStatus{}, 0, m.callErr(g, "read "+name, call.Err)
	}
	var props map[string]dbus.Variant
	if err := call.Store(&props); err != nil {
		return UnitStatus{}, 0, withOp("read "+name, err)
	}
	st := UnitStatus{Name: name}
	st.applyVariants(props)
	return st, call.ResponseSequence, nil
}

// jobCall is one of go-systemd's job methods (StartUnitContext...).
type jobCall func(ctx context.Context, ch chan<- string) (int, error)

// runJob issues a job and waits for its result: nil for "done", *JobError
// otherwise.
func (m *Manager) runJob(ctx context.Context, g *generation, op, name string, call jobCall) error {
	what := op + " " + name
	jctx := ctx
	if m.cfg.jobTimeout > 0 {
		var cancel context.CancelFunc
		jctx, cancel = context.WithTimeoutCause(ctx, m.cfg.jobTimeout, ErrJobTimeout)
		defer cancel()
	}
	// Buffered for the one result of the job: go-systemd sends it with a
	// blocking send from its signal dispatcher, which must never block on
	// us (we may have stopped listening). See doc.go.
	ch := make(chan string, 1)
	if _, err := call(jctx, ch); err != nil {
		// No job, or none go-systemd knows of: nothing will ever arrive on
		// ch, so do not wait for it.
		if context.Cause(jctx) == ErrJobTimeout && ctx.Err() == nil {
			return withOp(what, fmt.Errorf("%w after %v", ErrJobTimeout, m.cfg.jobTimeout))
		}
		return m.callErr(g, what, err)
	}
	var result string
	select {
	case result = <-ch:
	case <-g.broken:
		select {
		case result = <-ch: // finished just before the connection went
		default:
			return m.callErr(g, what, errors.New("connection lost while waiting for the job"))
		}
	case <-jctx.Done():
		if context.Cause(jctx) == ErrJobTimeout && ctx.Err() == nil {
			return withOp(what, fmt.Errorf("%w after %v", ErrJobTimeout, m.cfg.jobTimeout))
		}
		return withOp(what, fmt.Errorf("waiting for the job: %w", ctx.Err()))
	}
	if result == "done" {
		return nil
	}
	jerr := &JobError{Op: op, Unit: name, Result: result}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if st, err := m.status(sctx, g, name); err == nil {
		jerr.Status = st
	}
	return jerr
}

// Start starts a unit (job mode "replace") and waits until systemd has
// finished the job. A job result other than "done" is a *JobError
// (errors.Is ErrJobFailed) with the unit's state; an unknown unit is
// ErrUnitNotFound. A unit name without a type suffix means a service.
func (m *Manager) Start(ctx context.Context, unit string) error {
	return m.job(ctx, "start", unit, func(g *generation, name string) jobCall {
		return func(ctx context.Context, ch chan<- string) (int, error) {
			return g.sd.StartUnitContext(ctx, name, "replace", ch)
		}
	})
}

// Stop stops a unit and waits for the job. Stopping a unit that is already
// inactive, or that systemd does not know, succeeds.
func (m *Manager) Stop(ctx context.Context, unit string) error {
	err := m.job(ctx, "stop", unit, func(g *generation, name string) jobCall {
		return func(ctx context.Context, ch chan<- string) (int, error) {
			return g.sd.StopUnitContext(ctx, name, "replace", ch)
		}
	})
	if isNotFound(err) {
		return nil
	}
	return err
}

// Restart restarts a unit (starting it if it is not running) and waits for
// the job.
func (m *Manager) Restart(ctx context.Context, unit string) error {
	return m.job(ctx, "restart", unit, func(g *generation, name string) jobCall {
		return func(ctx context.Context, ch chan<- string) (int, error) {
			return g.sd.RestartUnitContext(ctx, name, "replace", ch)
		}
	})
}

func (m *Manager) job(ctx context.Context, op, unit string, mk func(*generation, string) jobCall) error {
	name, err := normalize(unit)
	if err != nil {
		return err
	}
	g, err := m.conn(ctx)
	if err != nil {
		return withOp(op+" "+name, err)
	}
	return m.runJob(ctx, g, op, name, mk(g, name))
}

func isNotFound(err error) bool {
	return err != nil && dbusErrorName(err) == dbusErrNoSuchUnit
}
