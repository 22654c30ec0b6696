//go:build linux

package chaos

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The observer reads /proc for every process every scan, so the reads on
// its hot path are raw system calls into a reused buffer: os.Open costs
// about twice as much per file, which matters at 100 scans a second.

// procStat is what the observer needs of /proc/PID/stat.
type procStat struct {
	comm  string
	state byte   // R, S, D, T, t, Z, X, ...
	start uint64 // start time in clock ticks since boot: with the pid, a process's identity
}

// runs reports whether the state is one of a process that can act: not
// stopped (SIGSTOP, ptrace) and not dead.
func (s procStat) runs() bool {
	switch s.state {
	case 'T', 't', 'Z', 'X', 'x':
		return false
	}
	return true
}

// readFileInto reads a small file into buf with raw system calls: they
// bypass the Go scheduler's system-call bookkeeping, so a read the kernel
// holds up (a /proc file of a process in execve waits for it) returns
// straight to the observer's thread instead of queueing for a P.
func readFileInto(path string, buf []byte) ([]byte, bool) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return nil, false
	}
	fd, _, errno := unix.RawSyscall6(unix.SYS_OPENAT, atFdcwd, uintptr(unsafe.Pointer(p)),
		uintptr(unix.O_RDONLY|unix.O_CLOEXEC), 0, 0, 0)
	if errno != 0 {
		return nil, false
	}
	defer unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	n := 0
	for n < len(buf) {
		m, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[n])), uintptr(len(buf)-n))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return nil, false
		}
		if m == 0 {
			break
		}
		n += int(m)
	}
	return buf[:n], true
}

// atFdcwd is AT_FDCWD (-100) as a system call argument.
var atFdcwd = func() uintptr { fd := unix.AT_FDCWD; return uintptr(fd) }()

// listPids lists the numeric entries of /proc, with raw system calls like
// readFileInto; buf is reused.
func listPids(buf []byte, into []string) []string {
	into = into[:0]
	p, _ := unix.BytePtrFromString("/proc")
	fd, _, errno := unix.RawSyscall6(unix.SYS_OPENAT, atFdcwd, uintptr(unsafe.Pointer(p)),
		uintptr(unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC), 0, 0, 0)
	if errno != 0 {
		return into
	}
	defer unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	var names []string
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_GETDENTS64, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names[:0])
		for _, name := range names {
			if name[0] >= '0' && name[0] <= '9' {
				into = append(into, name)
			}
		}
	}
	return into
}

// readStat reads /proc/PID/stat.
func readStat(pid string, buf []byte) (procStat, bool) {
	b, ok := readFileInto("/proc/"+pid+"/stat", buf)
	if !ok {
		return procStat{}, false
	}
	return parseStat(b)
}

// parseStat parses "pid (comm) state ppid ... starttime ...". The command
// name may hold spaces and parentheses, so it ends at the last ')'.
func parseStat(b []byte) (procStat, bool) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 >= len(b) {
		return procStat{}, false
	}
	st := procStat{comm: string(b[open+1 : end]), state: b[end+2]}
	// Fields after the command: state is field 3, starttime field 22.
	fields := bytes.Fields(b[end+2:])
	if len(fields) < 20 {
		return procStat{}, false
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return procStat{}, false
	}
	st.start = start
	return st, true
}

// environ returns the variables of a process's initial environment.
func environ(pid string) (map[string]string, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/environ")
	if err != nil {
		return nil, false
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			env[k] = v
		}
	}
	return env, true
}

// nsID identifies a namespace: the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

func netnsOfPid(pid string) (nsID, bool) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+pid+"/ns/net", &st); err != nil {
		return nsID{}, false
	}
	return nsID{dev: st.Dev, ino: st.Ino}, true
}

func netnsOfFd(fd int) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nsID{}, err
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// cgroupOf returns the cgroup v2 path of a process, relative to the
// hierarchy's root (the "0::" line of /proc/PID/cgroup).
func cgroupOf(pid string, buf []byte) (string, bool) {
	b, ok := readFileInto("/proc/"+pid+"/cgroup", buf)
	if !ok {
		return "", false
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if rest, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			return string(rest), true
		}
	}
	return "", false
}

// partitionsIn parses a GCL_PARTITIONS_FILE: one partition number a line.
func partitionsIn(b []byte) []int {
	var out []int
	for _, f := range bytes.Fields(b) {
		if p, err := strconv.Atoi(string(f)); err == nil {
			out = append(out, p)
		}
	}
	return out
}
