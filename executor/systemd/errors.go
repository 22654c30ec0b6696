//go:build linux

package systemd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrDisconnected: the connection to systemd was lost while the call was
	// in flight, or the context ended while waiting for a reconnect. The
	// Manager keeps redialling; a later call may succeed.
	ErrDisconnected = errors.New("systemd: disconnected")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("systemd: manager closed")
	// ErrJobFailed: systemd finished the job with a result other than
	// "done". errors.As with *JobError gives the result and the unit's state.
	ErrJobFailed = errors.New("systemd: job failed")
	// ErrJobTimeout: the job did not finish within the job timeout
	// (WithJobTimeout). The job may still be running in systemd.
	ErrJobTimeout = errors.New("systemd: job timed out")
	// ErrUnitNotFound: systemd has no such unit (no unit file, not loaded).
	ErrUnitNotFound = errors.New("systemd: unit not found")
	// ErrUnitExists: a transient unit of that name is already running.
	ErrUnitExists = errors.New("systemd: unit already exists")
	// ErrInvalidUnit: the unit name or transient command cannot work (empty,
	// contains a slash, unknown suffix, empty command, binding a unit to
	// itself).
	ErrInvalidUnit = errors.New("systemd: invalid unit")
	// ErrInvalidOption: Dial was given an option that cannot work.
	ErrInvalidOption = errors.New("systemd: invalid option")
	// ErrGuard: a unit guard (Manager.Guard) could not be started or could
	// not be given a deadline.
	ErrGuard = errors.New("systemd: unit guard")
)

// JobError is the error of a job that finished with a result other than
// "done". It matches ErrJobFailed with errors.Is.
type JobError struct {
	Op     string     // "start", "stop", "restart", "start transient"
	Unit   string     // unit name
	Result string     // job result: failed, canceled, timeout, dependency, skipped...
	Status UnitStatus // the unit's state right after the job (zero if it could not be read)
}

func (e *JobError) Error() string {
	s := fmt.Sprintf("systemd: %s %s: job %s", e.Op, e.Unit, e.Result)
	if e.Status.ActiveState != "" {
		s += fmt.Sprintf(" (unit %s/%s", e.Status.ActiveState, e.Status.SubState)
		if e.Status.Result != "" {
			s += ", result " + e.Status.Result
		}
		if e.Status.LoadState != "" && e.Status.LoadState != "loaded" {
			s += ", load state " + e.Status.LoadState
		}
		s += ")"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrJobFailed) hold.
func (e *JobError) Unwrap() error { return ErrJobFailed }

// opError prefixes an error with the operation, keeping one "systemd:"
// prefix: "systemd: start x.service: disconnected: ...".
type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

// withOp wraps err (often one of ours, starting with "systemd: ") with the
// operation it failed in.
func withOp(what string, err error) error {
	return &opError{msg: "systemd: " + what + ": " + strings.TrimPrefix(err.Error(), "systemd: "), err: err}
}

// D-Bus error names systemd answers with.
const (
	dbusErrNoSuchUnit   = "org.freedesktop.systemd1.NoSuchUnit"
	dbusErrUnitExists   = "org.freedesktop.systemd1.UnitExists"
	dbusErrNoUnitForPID = "org.freedesktop.systemd1.NoUnitForPID"
	dbusErrUnknownObj   = "org.freedesktop.DBus.Error.UnknownObject"
	dbusErrUnknownProp  = "org.freedesktop.DBus.Error.UnknownProperty"
	dbusErrInvalidArgs  = "org.freedesktop.DBus.Error.InvalidArgs"
)

// dbusErrorName returns the D-Bus error name in err, or "".
func dbusErrorName(err error) string {
	var v dbus.Error
	if errors.As(err, &v) {
		return v.Name
	}
	var p *dbus.Error
	if errors.As(err, &p) && p != nil {
		return p.Name
	}
	return ""
}
