//go:build linux

// Package systemdtest starts real systemd user managers for tests.
//
// [Start] runs `/lib/systemd/systemd --user` as root in a private mount
// namespace (a tmpfs over /run/systemd, so the manager neither sees nor
// touches the host's systemd state) with its own XDG_RUNTIME_DIR. The manager
// listens on <Dir>/systemd/private; units written to <Dir>/systemd/user are on
// its unit path.
//
// Each manager is also put into its own cgroup subtree (one directory per
// mounted hierarchy, named after its runtime directory). A user manager treats
// the cgroup it starts in as its root: started in the host's root cgroup it
// would create app.slice and init.scope there, move unrelated processes into
// init.scope, and share app.slice with every other test manager. In its own
// subtree several managers run side by side, and cleanup can find and kill
// every process a test left behind.
//
// The package is for tests only: it runs systemctl, which product code must
// not.
package systemdtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// SystemdBinary is the systemd executable the harness runs with --user.
const SystemdBinary = "/lib/systemd/systemd"

// Timeouts of the harness. They bound waits; nothing sleeps for them.
const (
	readyTimeout = 20 * time.Second
	stopTimeout  = 10 * time.Second
	pollEvery    = 10 * time.Millisecond
)

// UserManager is one running systemd user manager.
type UserManager struct {
	// Dir is the manager's XDG_RUNTIME_DIR (removed at cleanup).
	Dir string
	// PrivateSocket is the manager's private D-Bus socket (a peer-to-peer
	// socket, not a bus): Dir/systemd/private.
	PrivateSocket string
	// UnitDir is a runtime unit directory on the manager's unit path
	// (Dir/systemd/user); InstallUnit writes there.
	UnitDir string
	// DropInDir is where runtime drop-ins for this manager's units go; it is
	// UnitDir (a drop-in for x.service lives in UnitDir/x.service.d/).
	DropInDir string

	cgroups []string // our subtree in every hierarchy, deepest cleanup first
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Start starts a user manager and registers its teardown with t.Cleanup. It
// returns once the manager answers on its private socket. Without root,
// unshare or systemd the test is skipped, or fails when CI=true.
func Start(t testing.TB) *UserManager {
	t.Helper()
	requireCapable(t)

	dir, err := os.MkdirTemp("", "gcl-sd-")
	if err != nil {
		t.Fatalf("systemdtest: runtime dir: %v", err)
	}
	m := &UserManager{
		Dir:           dir,
		PrivateSocket: filepath.Join(dir, "systemd", "private"),
		UnitDir:       filepath.Join(dir, "systemd", "user"),
		logPath:       filepath.Join(dir, "manager.log"),
	}
	m.DropInDir = m.UnitDir
	for _, sub := range []string{"home", "systemd/user"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatalf("systemdtest: %v", err)
		}
	}
	m.cgroups = makeCgroups(t, "gcl-systemdtest-"+filepath.Base(dir))
	t.Cleanup(func() { m.cleanup(t) })

	if err := m.launch(); err != nil {
		t.Fatalf("systemdtest: start user manager: %v\n%s", err, m.logTail())
	}
	return m
}

func requireCapable(t testing.TB) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf("systemdtest: "+format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: a missing capability is a failure)")
		}
		t.Skip(msg)
	}
	if _, err := os.Stat(SystemdBinary); err != nil {
		missing("no systemd: %v", err)
	}
	if os.Geteuid() != 0 {
		missing("needs root for a private mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		missing("no unshare: %v", err)
	}
}

// launchScript runs in the new mount namespace: join our cgroups (the
// arguments), hide the host's /run/systemd, then become the manager. The
// manager keeps the shell's PID, so the exec.Cmd is the manager.
const launchScript = `
for f in "$@"; do echo $$ > "$f" 2>/dev/null || true; done
mkdir -p /run/systemd
mount -t tmpfs none /run/systemd || exit 97
mkdir -p /run/systemd/system
exec ` + SystemdBinary + ` --user
`

func (m *UserManager) launch() error {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"-m", "sh", "-c", launchScript, "sh"}
	for _, cg := range m.cgroups {
		args = append(args, filepath.Join(cg, "cgroup.procs"))
	}
	cmd := exec.Command("unshare", args...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + filepath.Join(m.Dir, "home"),
		"XDG_RUNTIME_DIR=" + m.Dir,
		"LANG=C.UTF-8",
		"SYSTEMD_LOG_TARGET=console",
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("manager exited early: %v", cmd.ProcessState)
		default:
		}
		if lastErr = ping(m.PrivateSocket); lastErr == nil {
			return nil
		}
		time.Sleep(pollEvery)
	}
	return fmt.Errorf("private socket %s did not answer within %v: %v", m.PrivateSocket, readyTimeout, lastErr)
}

// ping connects to the private socket and reads the manager's Version.
//
// systemd can leave the first message on a fresh private connection
// unprocessed until more input arrives, so the call is resent after a short
// wait instead of waiting long for one answer.
func ping(socket string) error {
	if _, err := os.Stat(socket); err != nil {
		return err
	}
	conn, err := dbus.Dial("unix:path=" + socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		// No Hello: a peer-to-peer socket has no bus driver to answer it.
		errc <- conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))})
	}()
	select {
	case err := <-errc:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		conn.Close()
		return errors.New("authentication: no answer within 3s")
	}
	obj := conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		cctx, ccancel := context.WithTimeout(ctx, wait)
		var v dbus.Variant
		err := obj.CallWithContext(cctx, "org.freedesktop.DBus.Properties.Get", 0, "org.freedesktop.systemd1.Manager", "Version").Store(&v)
		ccancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

// PID is the manager's process ID (0 when it is not running).
func (m *UserManager) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	select {
	case <-m.done:
		return 0
	default:
	}
	return m.cmd.Process.Pid
}

// Env is the environment for `systemctl --user` against this manager.
func (m *UserManager) Env() []string {
	return append(os.Environ(), "XDG_RUNTIME_DIR="+m.Dir, "DBUS_SESSION_BUS_ADDRESS=")
}

// Systemctl runs `systemctl --user args...` against this manager and returns
// its combined output; a non-zero exit fails the test.
func (m *UserManager) Systemctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := m.TrySystemctl(args...)
	if err != nil {
		t.Fatalf("systemdtest: systemctl --user %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TrySystemctl is Systemctl returning the error instead of failing.
func (m *UserManager) TrySystemctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemctl", append([]string{"--user", "--no-pager"}, args...)...)
	cmd.Env = m.Env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Show returns one property of a unit as systemctl prints it.
func (m *UserManager) Show(t testing.TB, unit, property string) string {
	t.Helper()
	return strings.TrimSpace(m.Systemctl(t, "show", "--property="+property, "--value", unit))
}

// InstallUnit writes a unit file into UnitDir and reloads the manager.
func (m *UserManager) InstallUnit(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(m.UnitDir, name), []byte(content), 0o644); err != nil {
		t.Fatalf("systemdtest: write unit %s: %v", name, err)
	}
	m.DaemonReload(t)
}

// DaemonReload makes the manager re-read its unit files.
func (m *UserManager) DaemonReload(t testing.TB) {
	t.Helper()
	m.Systemctl(t, "daemon-reload")
}

// Reexec makes the manager re-execute itself (systemctl --user
// daemon-reexec): units keep running, every connection to the private socket
// is dropped. It returns once the new instance answers.
func (m *UserManager) Reexec(t testing.TB) {
	t.Helper()
	m.Systemctl(t, "daemon-reexec")
	if err := waitPing(m.PrivateSocket); err != nil {
		t.Fatalf("systemdtest: after daemon-reexec: %v\n%s", err, m.logTail())
	}
}

// Restart stops the manager (SIGTERM: it stops its units and exits, so its
// socket goes away) and starts a new one on the same Dir. Units are not
// started again.
func (m *UserManager) Restart(t testing.TB) {
	t.Helper()
	m.Stop(t)
	m.Relaunch(t)
}

// Kill SIGKILLs the manager and every process of its units, then starts a
// new manager on the same Dir.
func (m *UserManager) Kill(t testing.TB) {
	t.Helper()
	m.stop(t, syscall.SIGKILL)
	m.killLeftovers(t)
	m.Relaunch(t)
}

// Stop stops the manager (SIGTERM; it stops its units) and kills whatever
// is left in its cgroup. Relaunch starts it again.
func (m *UserManager) Stop(t testing.TB) {
	t.Helper()
	m.stop(t, syscall.SIGTERM)
	m.killLeftovers(t)
}

// Relaunch starts a new manager on the same Dir after Stop and waits until
// it answers.
func (m *UserManager) Relaunch(t testing.TB) {
	t.Helper()
	if m.PID() != 0 {
		t.Fatalf("systemdtest: Relaunch: manager %d still running", m.PID())
	}
	if err := m.launch(); err != nil {
		t.Fatalf("systemdtest: restart user manager: %v\n%s", err, m.logTail())
	}
}

func waitPing(socket string) error {
	deadline := time.Now().Add(readyTimeout)
	var err error
	for time.Now().Before(deadline) {
		if err = ping(socket); err == nil {
			return nil
		}
		time.Sleep(pollEvery)
	}
	return fmt.Errorf("private socket %s did not answer within %v: %v", socket, readyTimeout, err)
}

// stop signals the manager and waits for it to exit; after stopTimeout it
// kills the manager's process group.
func (m *UserManager) stop(t testing.TB, sig syscall.Signal) {
	t.Helper()
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return
	case <-time.After(stopTimeout):
	}
	t.Logf("systemdtest: manager %d did not exit within %v after %v; killing its process group", cmd.Process.Pid, stopTimeout, sig)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		t.Errorf("systemdtest: manager %d survived SIGKILL", cmd.Process.Pid)
	}
}

// killLeftovers SIGKILLs every process still in our cgroup subtree (units of
// a killed manager) and waits until the subtree is empty.
func (m *UserManager) killLeftovers(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(stopTimeout)
	for {
		pids := m.cgroupPIDs()
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("systemdtest: processes %v still in the manager's cgroup after %v", pids, stopTimeout)
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(pollEvery)
	}
}

// cgroupPIDs lists the processes in our subtree of every hierarchy.
func (m *UserManager) cgroupPIDs() []int {
	seen := map[int]bool{}
	var pids []int
	for _, root := range m.cgroups {
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

func (m *UserManager) cleanup(t testing.TB) {
	if t.Failed() {
		t.Logf("systemdtest: manager log (%s):\n%s", m.logPath, m.logTail())
	}
	m.stop(t, syscall.SIGTERM)
	m.killLeftovers(t)
	removeCgroups(t, m.cgroups)
	if err := os.RemoveAll(m.Dir); err != nil {
		t.Errorf("systemdtest: remove %s: %v", m.Dir, err)
	}
}

// logTail returns the last lines of the manager's output.
func (m *UserManager) logTail() string {
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return "(no manager log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}

// makeCgroups creates a directory called name at the root of every mounted
// cgroup hierarchy and returns those that exist. Failure is not fatal: the
// manager then shares the root cgroup (works, but managers may disturb each
// other).
func makeCgroups(t testing.TB, name string) []string {
	t.Helper()
	var dirs []string
	for _, mp := range cgroupMounts() {
		dir := filepath.Join(mp, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Logf("systemdtest: cgroup %s: %v (manager not isolated in this hierarchy)", dir, err)
			continue
		}
		dirs = append(dirs, dir)
	}
	return dirs
}

// cgroupMounts lists the mount points of cgroup (v1) and cgroup2 file
// systems, skipping cpuset (a new cpuset group takes no processes until its
// cpus and mems are set, and user managers do not use it).
func cgroupMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts... - fstype source superopts
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
		fstype := fields[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		if fstype == "cgroup" && hasOpt(fields[sep+3], "cpuset") {
			continue
		}
		if fields[3] != "/" { // a bind mount of a subtree: not ours to use
			continue
		}
		mps = append(mps, fields[4])
	}
	return mps
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// removeCgroups removes our subtrees, deepest directories first. A cgroup
// with a just-exited process may be busy for a moment, so it retries.
func removeCgroups(t testing.TB, roots []string) {
	t.Helper()
	deadline := time.Now().Add(stopTimeout)
	for _, root := range roots {
		for {
			err := removeTree(root)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("systemdtest: remove cgroup %s: %v", root, err)
				break
			}
			time.Sleep(pollEvery)
		}
	}
}

func removeTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		// cgroup directories are removed with rmdir even though they
		// contain control files.
		if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rmdir %s: %w", dirs[i], err)
		}
	}
	return nil
}
