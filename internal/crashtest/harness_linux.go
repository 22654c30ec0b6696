//go:build linux

package crashtest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// Pause notes the time, SIGSTOPs the process, waits until the kernel shows
// it stopped and appends a "paused" event stamped with the noted time: a
// stopped process does nothing, so its term, if it had one, ended (as far
// as acting goes) no later than that. Resume ends the pause.
func (p *Proc) Pause() (time.Time, error) {
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return at, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := procState(p.Pid())
		if err != nil {
			return at, err
		}
		if st == 'T' {
			break
		}
		if time.Now().After(deadline) {
			return at, fmt.Errorf("node %s is not stopped 5s after SIGSTOP (state %c)", p.ID, st)
		}
		time.Sleep(time.Millisecond)
	}
	return at, AppendEvent(p.LogPath, KindPaused, p.ID, 0, at)
}

// Resume SIGCONTs a paused process and appends a "resumed" event.
func (p *Proc) Resume() (time.Time, error) {
	at := time.Now()
	if err := AppendEvent(p.LogPath, KindResumed, p.ID, 0, at); err != nil {
		return at, err
	}
	return at, p.cmd.Process.Signal(syscall.SIGCONT)
}

// procState is the state letter of /proc/PID/stat ('T': stopped).
func procState(pid int) (byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, errors.New("malformed /proc stat: " + s)
	}
	return s[i+2], nil
}
