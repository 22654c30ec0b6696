//go:build linux

package boottime

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestDeadlineNeverLate(t *testing.T) {
	if Deadline(time.Time{}) != 0 {
		t.Fatal("the zero time is no deadline")
	}
	if Deadline(time.Now().Add(-time.Hour)) < 1 {
		t.Fatal("a past deadline must stay a deadline")
	}
	in := 300 * time.Millisecond
	before := Now()
	got := Deadline(time.Now().Add(in))
	if got > before+int64(in)+int64(50*time.Millisecond) || got < before {
		t.Fatalf("deadline %d, boot %d, want about +%v", got, before, in)
	}
}

func TestTimerFiresAtDeadline(t *testing.T) {
	tfd, err := NewTimer(0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(tfd)
	start := time.Now()
	if err := Arm(tfd, Deadline(start.Add(100*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	var buf [8]byte
	if _, err := unix.Read(tfd, buf[:]); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 95*time.Millisecond || took > 5*time.Second {
		t.Fatalf("fired after %v, want about 100ms", took)
	}
}
