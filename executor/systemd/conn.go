//go:build linux

package systemd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

const (
	systemdDest       = "org.freedesktop.systemd1"
	systemdPath       = dbus.ObjectPath("/org/freedesktop/systemd1")
	unitPathPrefix    = "/org/freedesktop/systemd1/unit/"
	managerIface      = "org.freedesktop.systemd1.Manager"
	unitIface         = "org.freedesktop.systemd1.Unit"
	propsChangedName  = "org.freedesktop.DBus.Properties.PropertiesChanged"
	signalBufferSize  = 4096
	systemBusAddress  = "unix:path=/var/run/dbus/system_bus_socket"
	systemPrivateAddr = "unix:path=/run/systemd/private"
)

// generation is one set of connections to systemd. It is replaced as a whole
// when any of its connections closes.
type generation struct {
	id     uint64
	ep     endpoint          // where its connections go (a unit guard dials the same)
	sd     *sddbus.Conn      // method calls and job results (go-systemd)
	sig    *dbus.Conn        // our signal connection; snapshots are read on it too
	sigCh  chan *dbus.Signal // signals of sig, closed when sig closes
	conns  []*dbus.Conn      // every godbus connection of this generation
	broken chan struct{}     // closed when the generation is lost
	once   sync.Once
}

func (g *generation) lose() { g.once.Do(func() { close(g.broken) }) }

// lost reports whether any connection of the generation has closed. godbus
// closes a connection before failing its pending calls, so a call that
// failed because the socket went away sees lost() == true.
func (g *generation) lost() bool {
	select {
	case <-g.broken:
		return true
	default:
	}
	for _, c := range g.conns {
		if !c.Connected() {
			return true
		}
	}
	return false
}

func (g *generation) close() {
	g.lose()
	if g.sd != nil {
		g.sd.Close()
	}
	for _, c := range g.conns {
		_ = c.Close()
	}
}

// endpoint is a D-Bus address to reach systemd at, and whether it is a
// message bus (Hello, match rules) rather than systemd's peer-to-peer
// private socket.
type endpoint struct {
	addr string
	bus  bool
}

// dialOne opens one authenticated connection. The connection must outlive
// ctx, so ctx bounds only the handshake.
func (m *Manager) dialOne(ctx context.Context, ep endpoint) (*dbus.Conn, error) {
	return dialEndpoint(ctx, ep)
}

// dialEndpoint opens one authenticated connection to ep and pings systemd
// on it. It needs nothing from a Manager, so the unit guard process dials
// with it too.
func dialEndpoint(ctx context.Context, ep endpoint) (*dbus.Conn, error) {
	c, err := dbus.Dial(ep.addr)
	if err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() {
		// EXTERNAL with the numeric uid: no user name lookup.
		err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))})
		if err == nil && ep.bus {
			err = c.Hello()
		}
		errc <- err
	}()
	select {
	case err = <-errc:
	case <-ctx.Done():
		_ = c.Close() // unblocks Auth or Hello
		<-errc
		err = ctx.Err()
	}
	if err == nil {
		err = pingUntilAnswered(ctx, c)
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// pingUntilAnswered pings systemd on a fresh connection until a ping is
// answered. systemd (seen with 252 on its private socket) can leave a
// message that arrives right behind the authentication's BEGIN unprocessed
// until more input arrives on the connection: the first call on a new
// connection then hangs (in our tests for almost half of the connections
// made while the manager is busy). Each resent ping is such input, and once
// one is answered the connection is known to work.
func pingUntilAnswered(ctx context.Context, c *dbus.Conn) error {
	wait := 50 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, wait)
		err := c.Object(systemdDest, systemdPath).CallWithContext(pctx, "org.freedesktop.DBus.Peer.Ping", 0).Err
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("ping: %w", err)
		}
		wait = min(wait*2, time.Second)
	}
}

// dialer picks the endpoint for this attempt and dials it: for the system
// manager the system bus, or, as root when there is no bus, systemd's
// private socket (like go-systemd's NewWithContext).
func (m *Manager) dialer(ctx context.Context) (endpoint, *dbus.Conn, error) {
	switch m.cfg.target.kind {
	case targetUser:
		ep := endpoint{addr: m.cfg.target.address}
		c, err := m.dialOne(ctx, ep)
		return ep, c, err
	case targetBus:
		ep := endpoint{addr: m.cfg.target.address, bus: true}
		c, err := m.dialOne(ctx, ep)
		return ep, c, err
	}
	addr := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")
	if addr == "" {
		addr = systemBusAddress
	}
	ep := endpoint{addr: addr, bus: true}
	c, err := m.dialOne(ctx, ep)
	if err == nil {
		return ep, c, nil
	}
	if os.Geteuid() != 0 {
		return endpoint{}, nil, err
	}
	ep = endpoint{addr: systemPrivateAddr}
	c, err2 := m.dialOne(ctx, ep)
	if err2 != nil {
		return endpoint{}, nil, fmt.Errorf("system bus: %w; private socket: %w", err, err2)
	}
	return ep, c, nil
}

// connect builds a generation: go-systemd's two connections plus our signal
// connection, subscribed.
func (m *Manager) connect(ctx context.Context, id uint64) (*generation, error) {
	ep, first, err := m.dialer(ctx)
	if err != nil {
		return nil, err
	}
	dial := func(ctx context.Context) (*dbus.Conn, error) { return m.dialOne(ctx, ep) }
	bus := ep.bus
	g := &generation{id: id, ep: ep, broken: make(chan struct{})}
	var mu sync.Mutex
	pending := first
	sd, err := sddbus.NewConnection(func() (*dbus.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		c := pending
		pending = nil
		if c == nil {
			var err error
			if c, err = dial(ctx); err != nil {
				return nil, err
			}
		}
		g.conns = append(g.conns, c)
		return c, nil
	})
	if err != nil {
		g.close()
		return nil, err
	}
	g.sd = sd
	sig, err := dial(ctx)
	if err != nil {
		g.close()
		return nil, err
	}
	mu.Lock()
	g.conns = append(g.conns, sig)
	mu.Unlock()
	g.sig = sig
	g.sigCh = make(chan *dbus.Signal, signalBufferSize)
	sig.Signal(g.sigCh)
	if bus {
		err := sig.AddMatchSignalContext(ctx,
			dbus.WithMatchSender(systemdDest),
			dbus.WithMatchInterface("org.freedesktop.DBus.Properties"),
			dbus.WithMatchMember("PropertiesChanged"),
			dbus.WithMatchPathNamespace(dbus.ObjectPath(strings.TrimSuffix(unitPathPrefix, "/"))))
		if err != nil {
			g.close()
			return nil, fmt.Errorf("add signal match: %w", err)
		}
	}
	// On a bus, systemd emits unit signals only while a client is
	// subscribed; on a private socket it sends them anyway and Subscribe is
	// a no-op.
	if err := sig.Object(systemdDest, systemdPath).CallWithContext(ctx, managerIface+".Subscribe", 0).Err; err != nil {
		g.close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	for _, c := range g.conns {
		go func(c *dbus.Conn) {
			<-c.Context().Done()
			g.lose()
		}(c)
	}
	return g, nil
}

// install makes g the current generation. It reports false (and closes g)
// when the Manager was closed meanwhile.
func (m *Manager) install(g *generation) bool {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		g.close()
		return false
	}
	m.setCurrent(g)
	m.genID = g.id
	m.wg.Add(1)
	m.mu.Unlock()
	go m.pump(g)
	return true
}

// supervise waits for the current generation to be lost and replaces it.
func (m *Manager) supervise(g *generation) {
	defer m.wg.Done()
	for {
		select {
		case <-m.closing:
			return
		case <-g.broken:
		}
		select {
		case <-m.closing: // lost because we closed it
			return
		default:
		}
		lostAt := time.Now()
		m.mu.Lock()
		if m.cur == g {
			m.setCurrent(nil)
		}
		m.mu.Unlock()
		g.close()
		m.log.Warn("systemd: connection lost; reconnecting", "target", m.cfg.target.desc, "generation", g.id)

		backoff := minBackoff
		var next *generation
		for attempt := 1; ; attempt++ {
			ctx, cancel := context.WithTimeout(m.ctx, dialTimeout)
			ng, err := m.connect(ctx, g.id+1)
			cancel()
			if err == nil {
				next = ng
				m.log.Info("systemd: reconnected", "target", m.cfg.target.desc, "generation", ng.id,
					"attempts", attempt, "after", time.Since(lostAt).Round(time.Millisecond))
				break
			}
			m.log.Debug("systemd: reconnect failed", "target", m.cfg.target.desc, "attempt", attempt, "retry_in", backoff, "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-m.closing:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, maxBackoff)
		}
		if !m.install(next) {
			return
		}
		m.notifyReconnect(next.id)
		g = next
	}
}

// conn returns the current generation, waiting for a reconnect (bounded by
// ctx) while there is none.
func (m *Manager) conn(ctx context.Context) (*generation, error) {
	for {
		m.mu.Lock()
		closed, g, changed := m.closed, m.cur, m.changed
		m.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if g != nil && !g.lost() {
			return g, nil
		}
		// None, or lost and about to be replaced by the supervisor.
		select {
		case <-m.closing:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for reconnect: %w", ErrDisconnected, ctx.Err())
		case <-changed:
		}
	}
}

// setCurrent replaces the current generation (nil while reconnecting) and
// wakes the callers waiting in conn. m.mu must be held.
func (m *Manager) setCurrent(g *generation) {
	m.cur = g
	close(m.changed)
	m.changed = make(chan struct{})
}

// callErr turns the error of a D-Bus call on g into ours: ErrDisconnected
// when the generation is gone, ErrClosed when the Manager is.
func (m *Manager) callErr(g *generation, what string, err error) error {
	if err == nil {
		return nil
	}
	if !g.lost() && isConnError(err) {
		// A write failed before the reader saw the end of the stream:
		// the connection is gone all the same.
		g.lose()
	}
	if g.lost() {
		m.mu.Lock()
		closed := m.closed
		m.mu.Unlock()
		if closed {
			return withOp(what, ErrClosed)
		}
		return withOp(what, fmt.Errorf("%w: %w", ErrDisconnected, err))
	}
	switch dbusErrorName(err) {
	case dbusErrNoSuchUnit:
		return withOp(what, fmt.Errorf("%w: %w", ErrUnitNotFound, err))
	case dbusErrUnitExists:
		return withOp(what, fmt.Errorf("%w: %w", ErrUnitExists, err))
	}
	return withOp(what, err)
}

// isConnError reports whether err is the transport failing rather than
// systemd answering.
func isConnError(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, dbus.ErrClosed)
}
