//go:build unix

package crashtest

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckIntervals: the checker the crash tests rely on catches every
// kind of overlap, so that they cannot pass vacuously.
func TestCheckIntervals(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(file, kind, node string, epoch uint64, ms int) Event {
		return Event{Kind: kind, Node: node, Epoch: epoch, At: at(ms), File: file}
	}
	cases := []struct {
		name    string
		events  []Event
		wantErr string // "" for none; checked against Intervals and CheckIntervals
	}{
		{"handover", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindStop, "a", 1, 10),
			ev("b", KindStart, "b", 3, 11),
		}, ""},
		{"stop after successor start", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindStop, "a", 1, 12),
			ev("b", KindStart, "b", 3, 11),
		}, "overlap"},
		{"stop at the same instant", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindStop, "a", 1, 11),
			ev("b", KindStart, "b", 3, 11),
		}, "overlap"},
		{"two open", []Event{
			ev("a", KindStart, "a", 1, 0), ev("b", KindStart, "b", 3, 11),
		}, "overlap"},
		{"killed before successor", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindKilled, "a", 0, 50),
			ev("b", KindStart, "b", 3, 51),
		}, ""},
		{"successor before the kill", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindKilled, "a", 0, 50),
			ev("b", KindStart, "b", 3, 49),
		}, "overlap"},
		{"epoch went back", []Event{
			ev("a", KindStart, "a", 5, 0), ev("a", KindStop, "a", 5, 10),
			ev("b", KindStart, "b", 3, 20),
		}, "epoch did not grow"},
		{"double start", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindStart, "a", 3, 10),
		}, "still active"},
		{"exit while active", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindExit, "a", 0, 10),
		}, "exited while"},
		{"stop of another epoch", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindStop, "a", 2, 10),
		}, "another epoch"},
		{"paused before successor, stop after resume", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindPaused, "a", 0, 50),
			ev("b", KindStart, "b", 3, 1100),
			ev("a", KindResumed, "a", 0, 1200), ev("a", KindStop, "a", 1, 1201),
			ev("b", KindStop, "b", 3, 2900), ev("a", KindStart, "a", 5, 3000),
		}, ""},
		{"successor before the pause", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindPaused, "a", 0, 50),
			ev("b", KindStart, "b", 3, 40),
		}, "overlap"},
		{"start before the paused term's end", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindPaused, "a", 0, 50),
			ev("a", KindResumed, "a", 0, 1200), ev("a", KindStart, "a", 3, 1300),
		}, "paused term"},
		{"paused term lost without OnPassive, then a new term", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindPaused, "a", 0, 50),
			ev("b", KindStart, "b", 3, 1100), ev("a", KindResumed, "a", 0, 1200),
			ev("a", KindLost, "a", 1, 1201), ev("b", KindStop, "b", 3, 2900),
			ev("a", KindStart, "a", 5, 3000),
		}, ""},
		{"paused term stopped with another epoch", []Event{
			ev("a", KindStart, "a", 1, 0), ev("a", KindPaused, "a", 0, 50),
			ev("a", KindResumed, "a", 0, 1200), ev("a", KindStop, "a", 2, 1300),
		}, "another epoch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ivs, err := Intervals(c.events)
			if err == nil {
				err = CheckIntervals(ivs)
			}
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
			if (Overlaps(ivs) > 0) != (c.wantErr == "overlap") {
				t.Fatalf("Overlaps = %d for %v", Overlaps(ivs), ivs)
			}
		})
	}
}

func TestReadEventsIgnoresTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n1.events")
	if err := AppendEvent(path, KindStart, "n1", 7, time.Unix(0, 42)); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("stop n1 7 4") // torn: no newline yet
	f.Close()
	evs, err := ReadEvents(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != KindStart || evs[0].Epoch != 7 || evs[0].At.UnixNano() != 42 {
		t.Fatalf("events = %v", evs)
	}
}

// TestProxyPartition: a partitioned proxy passes no bytes either way and
// closes nothing; after healing, the held bytes arrive in order.
func TestProxyPartition(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }() // echo
		}
	}()
	p, err := NewProxy(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := func(n int, timeout time.Duration) ([]byte, error) {
		buf := make([]byte, n)
		c.SetReadDeadline(time.Now().Add(timeout))
		_, err := io.ReadFull(c, buf)
		return buf, err
	}
	if _, err := c.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	if b, err := read(3, 5*time.Second); err != nil || string(b) != "one" {
		t.Fatalf("before partition: %q %v", b, err)
	}
	p.Partition()
	if _, err := c.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	// Silence: neither data nor EOF, only our own read deadline.
	if b, err := read(1, 300*time.Millisecond); !os.IsTimeout(err) {
		t.Fatalf("during partition: read %q, %v; want a timeout", b, err)
	}
	p.Heal()
	if b, err := read(3, 5*time.Second); err != nil || !bytes.Equal(b, []byte("two")) {
		t.Fatalf("after healing: %q %v", b, err)
	}
}
