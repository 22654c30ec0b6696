//go:build linux

package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupPrefix starts the name of every cgroup a lab makes, directly under
// the cgroup v2 root; sweepCgroups removes whatever carries it.
const cgroupPrefix = "glchaos-"

// cgroup2Root finds where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup
// on a unified host, /sys/fs/cgroup/unified on a hybrid one.
func cgroup2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		// "36 25 0:30 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw"
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		fields := strings.Fields(pre)
		if len(fields) >= 5 && fields[3] == "/" {
			found = append(found, fields[4])
		}
	}
	for _, p := range found {
		if p == "/sys/fs/cgroup" {
			return p, nil
		}
	}
	if len(found) > 0 {
		return found[0], nil
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}

// cgroup is one node's cgroup v2 directory.
type cgroup struct {
	path string
	dir  *os.File // open directory: the CgroupFD of the processes started in it
}

func newCgroup(root, name string) (*cgroup, error) {
	p := filepath.Join(root, name)
	if err := os.Mkdir(p, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: create cgroup %s: %w", p, err)
	}
	dir, err := os.Open(p)
	if err != nil {
		_ = os.Remove(p)
		return nil, fmt.Errorf("chaos: open cgroup %s: %w", p, err)
	}
	return &cgroup{path: p, dir: dir}, nil
}

// fd is the directory's descriptor for SysProcAttr.CgroupFD.
func (c *cgroup) fd() int { return int(c.dir.Fd()) }

func (c *cgroup) write(file, val string) error {
	if err := os.WriteFile(filepath.Join(c.path, file), []byte(val), 0o644); err != nil {
		return fmt.Errorf("chaos: write %s to %s/%s: %w", val, c.path, file, err)
	}
	return nil
}

// SetFrozen writes cgroup.freeze. Freezing is asynchronous: Frozen reports
// when every task has stopped.
func (c *cgroup) SetFrozen(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return c.write("cgroup.freeze", v)
}

// Frozen reports whether the cgroup is frozen ("frozen 1" in cgroup.events).
func (c *cgroup) Frozen() (bool, error) { return eventsFlag(c.path, "frozen") }

// Populated reports whether any process is left in the cgroup or below.
func (c *cgroup) Populated() (bool, error) { return eventsFlag(c.path, "populated") }

// Kill SIGKILLs every process of the cgroup and its descendants at once
// (cgroup.kill, Linux 5.14); on older kernels each listed process in turn.
// Fatal signals reach frozen tasks too.
func (c *cgroup) Kill() error {
	err := c.write("cgroup.kill", "1")
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return filepath.WalkDir(c.path, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		return nil
	})
}

// waitEmpty waits until no process is left in the cgroup.
func (c *cgroup) waitEmpty(ctx context.Context) error {
	return pollUntil(ctx, 10*time.Millisecond, func() (bool, error) {
		pop, err := c.Populated()
		return !pop, err
	})
}

// Remove thaws the cgroup, kills what is left in it, waits for it to empty
// and removes it with any child cgroups.
func (c *cgroup) Remove(ctx context.Context) error {
	err := removeCgroupTree(ctx, c.path)
	c.dir.Close()
	return err
}

func removeCgroupTree(ctx context.Context, p string) error {
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	c := &cgroup{path: p}
	_ = c.SetFrozen(false)
	if err := c.Kill(); err != nil {
		return err
	}
	if err := c.waitEmpty(ctx); err != nil {
		return fmt.Errorf("chaos: cgroup %s does not empty: %w", p, err)
	}
	// Children first: rmdir only removes an empty cgroup without children.
	var dirs []string
	_ = filepath.WalkDir(p, func(q string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, q)
		}
		return nil
	})
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("chaos: remove cgroup %s: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}

// sweepCgroups removes the cgroups of labs that did not clean up (a killed
// test). Callers hold the netlab lock, so no live lab owns them.
func sweepCgroups(ctx context.Context, root string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), cgroupPrefix) {
			errs = append(errs, removeCgroupTree(ctx, filepath.Join(root, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// eventsFlag reads "<key> 0|1" from a cgroup's cgroup.events.
func eventsFlag(dir, key string) (bool, error) {
	return eventsFlagBuf(dir, key, make([]byte, 512))
}

// eventsFlagBuf is eventsFlag reading into buf, for the observer.
func eventsFlagBuf(dir, key string, buf []byte) (bool, error) {
	b, ok := readFileInto(filepath.Join(dir, "cgroup.events"), buf)
	if !ok {
		return false, fmt.Errorf("chaos: cannot read %s/cgroup.events", dir)
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		k, v, _ := bytes.Cut(line, []byte{' '})
		if string(k) == key {
			return string(v) == "1", nil
		}
	}
	return false, fmt.Errorf("chaos: no %q in %s/cgroup.events", key, dir)
}

// pollUntil calls cond every interval until it returns true, an error, or
// ctx ends.
func pollUntil(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
