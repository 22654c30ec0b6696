//go:build linux

package systemd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file finds a unit's cgroup in the file system and kills every
// process in it without systemd: what the unit guard does first when its
// deadline passes, so that it does not depend on D-Bus or on systemd
// answering.

// cgroupKillRounds bounds killCgroupProcs: without cgroup.kill, processes
// are killed one by one, and one that forks between the read of the list
// and its kill leaves a child for the next round.
const cgroupKillRounds = 50

// cgroupTypes are the unit types that have a ControlGroup property.
var cgroupTypes = map[string]bool{"Service": true, "Scope": true, "Slice": true, "Socket": true, "Mount": true, "Swap": true}

// controlGroup reads a unit's ControlGroup: its cgroup's path relative to
// the root of the cgroup hierarchy, as systemd sees it. It is empty while
// the unit has no cgroup (not running), and for unit types without one.
func (m *Manager) controlGroup(ctx context.Context, g *generation, name string) (string, error) {
	typ := unitType(name)
	if !cgroupTypes[typ] {
		return "", nil
	}
	p, err := g.sd.GetUnitTypePropertyContext(ctx, name, typ, "ControlGroup")
	if err != nil {
		switch dbusErrorName(err) {
		case dbusErrUnknownProp, dbusErrInvalidArgs, dbusErrNoSuchUnit:
			if !g.lost() {
				return "", nil
			}
		}
		return "", m.callErr(g, "read the cgroup of "+name, err)
	}
	s, _ := p.Value.Value().(string)
	return s, nil
}

// cgroupDir is the directory of the cgroup rel (a ControlGroup value) in
// this mount namespace: under the cgroup2 mount, or, without one, under
// the legacy name=systemd hierarchy, where systemd tracks units on hosts
// without cgroup v2.
func cgroupDir(rel string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return cgroupDirIn(f, rel)
}

// cgroupDirIn is cgroupDir reading the mount table from r.
func cgroupDirIn(r io.Reader, rel string) (string, error) {
	if !strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("cgroup %q: not an absolute cgroup path", rel)
	}
	rel = filepath.Clean(rel)
	var best, bestRoot string
	bestV2 := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(fields) < sep+4 {
			continue
		}
		v2 := fields[sep+1] == "cgroup2"
		if !v2 && (fields[sep+1] != "cgroup" || !hasMountOpt(fields[sep+3], "name=systemd")) {
			continue
		}
		// A mount of a subtree (a container's view, a bind mount) holds
		// only the cgroups below its root.
		root := unescapeMount(fields[3])
		if !under(rel, root) {
			continue
		}
		switch {
		case best == "", v2 && !bestV2, v2 == bestV2 && len(root) > len(bestRoot):
			best, bestRoot, bestV2 = unescapeMount(fields[4]), root, v2
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if best == "" {
		return "", fmt.Errorf("cgroup %s: no cgroup2 or name=systemd hierarchy mounted here holds it", rel)
	}
	return filepath.Join(best, strings.TrimPrefix(rel, bestRoot)), nil
}

// under reports whether path is root or below it.
func under(path, root string) bool {
	return root == "/" || path == root || strings.HasPrefix(path, root+"/")
}

func hasMountOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// killCgroup SIGKILLs every process in the cgroup dir and below it, at
// once: cgroup.kill (cgroup v2, Linux 5.14) has the kernel kill them all,
// including any that fork meanwhile. Where there is no cgroup.kill (an
// older kernel, the legacy hierarchy) or it may not be written, the
// processes are killed one by one until none is left. A cgroup that does
// not exist holds nothing to kill: the unit is not running.
func killCgroup(dir string) error {
	if dir == "" {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.kill"), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte("1"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			return nil
		}
	}
	if _, serr := os.Stat(dir); errors.Is(serr, os.ErrNotExist) {
		return nil
	}
	return killCgroupProcs(dir)
}

// killCgroupProcs kills the processes listed in dir's cgroup.procs files,
// round after round, until there are none.
func killCgroupProcs(dir string) error {
	for round := 0; round < cgroupKillRounds; round++ {
		pids := cgroupPIDs(dir)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		// Killed processes leave the list only when they have exited; let
		// them before reading it again.
		time.Sleep(time.Millisecond)
	}
	if pids := cgroupPIDs(dir); len(pids) > 0 {
		return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", dir, pids)
	}
	return nil
}

// cgroupPIDs lists the processes of the cgroup dir and its descendants.
func cgroupPIDs(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}
