//go:build linux

package systemd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// TransientOptions describe a transient service (StartTransient).
type TransientOptions struct {
	Description      string
	Environment      []string // KEY=value
	WorkingDirectory string
	User             string // run as this user (system manager only)
	Group            string
	// Type is the service type; empty means "exec": the start job fails
	// when the command cannot be executed (simple would report it started).
	Type string
	// Restart policy: "", "no", "on-success", "on-failure",
	// "on-abnormal", "on-watchdog", "on-abort", "always" ("" leaves
	// systemd's default, no).
	Restart    string
	RestartSec time.Duration // delay before a restart (0: systemd's default)
	// KillTimeout bounds how long a stop waits after SIGTERM before SIGKILL
	// (TimeoutStopSec; 0: systemd's default).
	KillTimeout time.Duration
}

// StartTransient starts cmd as a transient service called unit (".service"
// is added when missing) and waits for the start job: systemd runs it like
// a unit file with ExecStart=cmd. A failed or inactive transient unit of that
// name left from a previous run is cleared first; an active one is
// ErrUnitExists.
func (m *Manager) StartTransient(ctx context.Context, unit string, cmd []string, opts TransientOptions) error {
	name, err := normalize(unit)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(name, ".service") {
		return fmt.Errorf("%w: %s: transient units here are services", ErrInvalidUnit, name)
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return fmt.Errorf("%w: %s: empty command", ErrInvalidUnit, name)
	}
	props := transientProps(cmd, opts)
	for attempt := 0; ; attempt++ {
		g, err := m.conn(ctx)
		if err != nil {
			return withOp("start transient "+name, err)
		}
		err = m.runJob(ctx, g, "start transient", name, func(ctx context.Context, ch chan<- string) (int, error) {
			return g.sd.StartTransientUnitContext(ctx, name, "replace", props, ch)
		})
		if attempt > 0 || !errors.Is(err, ErrUnitExists) {
			return err
		}
		// A leftover: failed units stay loaded until reset. Clear it
		// unless it is running.
		st, serr := m.status(ctx, g, name)
		if serr != nil {
			return err
		}
		if !st.IsDown() {
			return fmt.Errorf("%w (%s)", err, st)
		}
		if rerr := g.sd.ResetFailedUnitContext(ctx, name); rerr != nil && dbusErrorName(rerr) != dbusErrNoSuchUnit {
			return m.callErr(g, "reset failed "+name, rerr)
		}
		m.log.Debug("systemd: cleared leftover transient unit", "unit", name, "state", st.String())
	}
}

func transientProps(cmd []string, o TransientOptions) []sddbus.Property {
	typ := o.Type
	if typ == "" {
		typ = "exec"
	}
	props := []sddbus.Property{
		// The bool go-systemd calls uncleanIsFailure is systemd's
		// ignore_failure ("-" prefix): false, so a non-zero exit is a failure.
		sddbus.PropExecStart(cmd, false),
		sddbus.PropType(typ),
	}
	desc := o.Description
	if desc == "" {
		desc = strings.Join(cmd, " ")
	}
	props = append(props, sddbus.PropDescription(desc))
	if len(o.Environment) > 0 {
		props = append(props, sddbus.Property{Name: "Environment", Value: dbus.MakeVariant(o.Environment)})
	}
	if o.WorkingDirectory != "" {
		props = append(props, sddbus.Property{Name: "WorkingDirectory", Value: dbus.MakeVariant(o.WorkingDirectory)})
	}
	if o.User != "" {
		props = append(props, sddbus.Property{Name: "User", Value: dbus.MakeVariant(o.User)})
	}
	if o.Group != "" {
		props = append(props, sddbus.Property{Name: "Group", Value: dbus.MakeVariant(o.Group)})
	}
	if o.Restart != "" {
		props = append(props, sddbus.Property{Name: "Restart", Value: dbus.MakeVariant(o.Restart)})
	}
	if o.RestartSec > 0 {
		props = append(props, sddbus.Property{Name: "RestartUSec", Value: dbus.MakeVariant(uint64(o.RestartSec / time.Microsecond))})
	}
	if o.KillTimeout > 0 {
		props = append(props, sddbus.Property{Name: "TimeoutStopUSec", Value: dbus.MakeVariant(uint64(o.KillTimeout / time.Microsecond))})
	}
	return props
}
