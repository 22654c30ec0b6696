//go:build linux

package systemd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DropInName is the file BindToAgent writes into <unit>.d/.
const DropInName = "50-go-cluster-agent.conf"

// BindToAgent ties unit to the unit the calling process (the agent) runs
// in, so that systemd stops unit when the agent stops or dies: it writes a
// runtime drop-in <dropInDir>/<unit>.d/50-go-cluster-agent.conf with
// BindsTo=, PartOf= and After=<agent unit>, and reloads the manager.
//
// The agent's unit is what systemd says this process belongs to
// (GetUnitByPID), or WithAgentUnit. When that is not a service (a login
// session's scope, no unit at all, a manager that does not run us), there is
// nothing to bind to and BindToAgent does nothing. It is idempotent: when
// the unit already has the binding, nothing is written or reloaded.
func (m *Manager) BindToAgent(ctx context.Context, unit string) error {
	name, err := normalize(unit)
	if err != nil {
		return err
	}
	g, err := m.conn(ctx)
	if err != nil {
		return withOp("bind "+name+" to agent", err)
	}
	agent, err := m.agentUnit(ctx, g)
	if err != nil {
		return err
	}
	if agent == "" {
		return nil
	}
	if agent == name {
		return fmt.Errorf("%w: cannot bind %s to itself", ErrInvalidUnit, name)
	}

	props, err := g.sd.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return m.callErr(g, "bind "+name+" to agent", err)
	}
	has := func(prop string) bool {
		l, _ := props[prop].([]string)
		return slices.Contains(l, agent)
	}
	if has("BindsTo") && has("PartOf") && has("After") {
		m.log.Debug("systemd: unit already bound to agent", "unit", name, "agent", agent)
		return nil
	}

	dir := filepath.Join(m.cfg.dropInDir, name+".d")
	path := filepath.Join(dir, DropInName)
	content := []byte(fmt.Sprintf("# Written by go-cluster: stop %s when its agent (%s) stops.\n[Unit]\nBindsTo=%s\nPartOf=%s\nAfter=%s\n",
		name, agent, agent, agent, agent))
	if old, err := os.ReadFile(path); err != nil || !bytes.Equal(old, content) {
		if err := writeFileAtomic(dir, path, content); err != nil {
			return withOp("bind "+name+" to agent "+agent, err)
		}
	}
	if err := g.sd.ReloadContext(ctx); err != nil {
		return m.callErr(g, "reload after binding "+name+" to agent", err)
	}
	m.log.Debug("systemd: bound unit to agent", "unit", name, "agent", agent, "drop_in", path)
	return nil
}

// agentUnit is the service this process runs in, or "" when there is none.
func (m *Manager) agentUnit(ctx context.Context, g *generation) (string, error) {
	if m.cfg.agentUnit != nil {
		if *m.cfg.agentUnit == "" {
			m.log.Debug("systemd: not binding to the agent: no agent unit configured")
			return "", nil
		}
		return normalize(*m.cfg.agentUnit)
	}
	unit, err := g.sd.GetUnitNameByPID(ctx, uint32(os.Getpid()))
	if err != nil {
		if dbusErrorName(err) == dbusErrNoUnitForPID {
			m.log.Debug("systemd: not binding to the agent: this process is in no unit of the manager", "target", m.cfg.target.desc)
			return "", nil
		}
		return "", m.callErr(g, "find the agent's unit", err)
	}
	if !strings.HasSuffix(unit, ".service") {
		m.log.Debug("systemd: not binding to the agent: it does not run in a service", "unit", unit)
		return "", nil
	}
	return unit, nil
}

func writeFileAtomic(dir, path string, content []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+DropInName+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
