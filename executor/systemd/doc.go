//go:build linux

// Package systemd drives systemd units over D-Bus: the "systemd" backend of
// an app (cluster.WithBackend(cluster.Systemd("postgres")), and
// `backend "systemd" { unit = "postgres.service" }` in job files).
//
// A [Manager] is a connection to one systemd manager: the system manager by
// default, a user manager's private socket ([WithUserManager]), or any bus
// address ([WithBusAddress]). It starts, stops and restarts units and waits
// for the jobs to finish ([Manager.Start], [Manager.Stop], [Manager.Restart]),
// reads a unit's state ([Manager.Status]), follows it ([Manager.Watch]), runs
// a command as a transient service ([Manager.StartTransient]) and ties a
// unit's life to the agent's own unit ([Manager.BindToAgent]). A [Unit] is the
// handle the leader keeps for its backend: between a successful Start and
// its own Stop it reports every time the unit fails or goes down on its own
// ([Unit.Failures]).
//
// All of it goes through github.com/coreos/go-systemd/v22/dbus and
// github.com/godbus/dbus/v5; the package never runs systemctl.
//
// # Unit guards
//
// A [UnitGuard] ([Manager.Guard]) bounds a unit's run by a deadline that
// this process does not have to be running to enforce: a guard process (the
// program's own binary re-executed; this package's init runs it) holds the
// deadline on CLOCK_BOOTTIME and, when it passes without a newer one
// ([UnitGuard.HoldUntil]) or this process dies, SIGKILLs every process in
// the unit's cgroup through the cgroup file system (no D-Bus needed) and
// has systemd stop the unit, so that Restart= does not bring it back. An
// orderly stop disarms it ([UnitGuard.Disarm]). See guard.go and
// guardmain.go.
//
// # Connections and reconnects
//
// A Manager holds three D-Bus connections per "generation": the two that a
// go-systemd Conn opens (one for method calls, one for its JobRemoved
// listener) and one of our own for PropertiesChanged signals. When any of
// them closes (systemd re-executed or restarted, socket closed), the whole
// generation is dropped: calls in flight on it fail with an error wrapping
// [ErrDisconnected], and the Manager redials with a bounded exponential
// backoff (50ms up to 2s) until [Manager.Close]. Calls made while
// disconnected wait for the next generation, bounded by their context.
// Watches re-read the unit's state on the new generation and emit it.
//
// # Invariants worth knowing before changing anything
//
// Job results come through a channel handed to go-systemd
// (StartUnitContext and friends). go-systemd delivers the result with a
// blocking send from the goroutine that dispatches every signal of the
// connection, while holding the lock of its job table. If nobody receives
// (our caller's context ended, the job timed out, we gave up because the
// connection dropped), an unbuffered send would block that goroutine for
// ever and with it every later job result and signal of the connection. So
// the result channel is always buffered with room for exactly the one result
// a job produces: the send never blocks, whether or not we are still there
// to read it.
//
// We wait for a job result only when the method call succeeded. go-systemd
// registers the channel under the job's object path, which it learns from the
// call's reply; when the call fails (no such unit, access denied, connection
// lost, context ended) no job exists or none is known, nothing will ever be
// sent, and waiting would hang until the job timeout. The call itself and
// the registration happen under go-systemd's job-table lock, so a JobRemoved
// that arrives before the reply is processed cannot be missed.
//
// A user manager's private socket ($XDG_RUNTIME_DIR/systemd/private, and
// /run/systemd/private for the system manager) is a peer-to-peer D-Bus
// connection straight into systemd, not a message bus. There is no bus
// driver (org.freedesktop.DBus) on the other side, so we authenticate
// (EXTERNAL, by uid) and do not send Hello, which nothing would answer. It
// also means there are no match rules: systemd sends every signal to every
// private connection, subscribed or not. On a real bus (system bus, or
// [WithBusAddress]) we do send Hello, add a match rule for unit
// PropertiesChanged signals and call Manager.Subscribe, without which systemd
// emits unit signals on the bus only while some other client is subscribed.
//
// Every new connection is pinged until a ping is answered before it is
// used. systemd (252, on its private socket) can leave a message that
// arrives right behind the authentication's BEGIN unprocessed until more
// input arrives on the connection; without the ping the first call on
// almost half of the connections made while the manager was busy hung for
// ever. A resent ping is such input.
//
// Watches are ordered by the connection's message sequence. A watch reads a
// unit's properties with one GetAll (empty interface: all interfaces at
// once) on the same connection that carries the signals; godbus numbers
// every incoming message, so signals numbered before the reply are older
// than the snapshot and are dropped, and the ones after it are applied to
// it. systemd emits a unit's type-specific PropertiesChanged (Service:
// MainPID, Result) before the generic Unit one (ActiveState, SubState), so a
// watch emits on the Unit signal with both applied. The same ordering lets
// [Unit] separate events that happened before its start job finished (a
// previous Stop's "inactive") from failures after it: after the start job
// is done, it takes a snapshot and counts only what comes after it (states
// the watcher already processed past that point are replayed from a short
// history). A down occurrence ends only when the unit is active again:
// systemd's own restart of a crashed unit goes failed, auto-restart,
// inactive, activating, active, and that is one failure, not two.
//
// godbus hands signals to a full channel through one goroutine per signal,
// which loses their order; the signal channel is therefore large and drained
// by a goroutine that never blocks (per-watch queues are unbounded).
//
// The package is Linux-only.
package systemd
