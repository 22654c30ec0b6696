//go:build linux

package exec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestTail(t *testing.T) {
	t.Parallel()
	s := newSup(t, shell(`echo out1; echo err1 >&2; echo out2; printf 'partial'`))
	start(t, s)
	waitDone(t, s, 10*time.Second)
	dir := s.cfg.LogDir

	for _, tc := range []struct {
		stream string
		n      int
		want   []string
	}{
		{"stdout", 10, []string{"out1", "out2", "partial"}},
		{"stdout", 2, []string{"out2", "partial"}},
		{"stdout", 1, []string{"partial"}},
		{"stderr", 10, []string{"err1"}},
		{"stderr", 1, []string{"err1"}},
	} {
		got, err := Tail(dir, tc.stream, tc.n)
		if err != nil {
			t.Fatalf("Tail(%s, %d): %v", tc.stream, tc.n, err)
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Tail(%s, %d) = %q, want %q", tc.stream, tc.n, got, tc.want)
		}
	}
	for _, name := range []string{"stdout.log", "stderr.log"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != logFileMode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), os.FileMode(logFileMode))
		}
	}
	if _, err := Tail(dir, "stdin", 1); !errors.Is(err, ErrInvalidStream) {
		t.Errorf("Tail of stdin: %v", err)
	}
	if _, err := Tail(t.TempDir(), "stdout", 1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Tail of a missing log: %v", err)
	}
	if got, err := Tail(dir, "stdout", 0); err != nil || len(got) != 0 {
		t.Errorf("Tail(0) = %q, %v", got, err)
	}
}

func TestLogRotation(t *testing.T) {
	t.Parallel()
	// 60 lines of 8 bytes: 480 bytes over files of at most 200.
	cfg := shell(`i=10; while [ $i -lt 70 ]; do echo "line-$i"; i=$((i+1)); done`)
	cfg.MaxLogBytes = 200
	cfg.MaxLogFiles = 3
	s := newSup(t, cfg)
	start(t, s)
	waitDone(t, s, 10*time.Second)
	dir := s.cfg.LogDir

	for _, name := range []string{"stdout.log", "stdout.log.1", "stdout.log.2"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fi.Size() > cfg.MaxLogBytes {
			t.Errorf("%s has %d bytes, over the %d limit", name, fi.Size(), cfg.MaxLogBytes)
		}
	}
	want := func(from, to int) string {
		var l []string
		for i := from; i < to; i++ {
			l = append(l, "line-"+strconv.Itoa(i))
		}
		return strings.Join(l, "|")
	}
	got, err := Tail(dir, "stdout", 40)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != want(30, 70) {
		t.Errorf("Tail(40) = %q", got)
	}
	got, err = Tail(dir, "stdout", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != want(10, 70) {
		t.Errorf("Tail(1000) = %q", got)
	}
}

func TestLogRotationKeepsMaxFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := openLogFile(logPath(dir, "stdout"), 20, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 100 {
		if _, err := fmt.Fprintf(l, "l%03d\n", i); err != nil {
			t.Fatal(err)
		}
	}
	// 5-byte lines, 4 per file: current + 2 rotated = the last 12 lines.
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "stdout.log,stdout.log.1,stdout.log.2" {
		t.Errorf("files %v", names)
	}
	got, err := Tail(dir, "stdout", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 12 || got[0] != "l088" || got[11] != "l099" {
		t.Errorf("Tail = %q", got)
	}
}

func TestLogFileSplitsLongLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := openLogFile(logPath(dir, "stdout"), 10, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// One write holding a short line, a line longer than a file, a short one.
	if _, err := l.Write([]byte("ab\n" + strings.Repeat("x", 25) + "\ncd\n")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if fi, err := os.Stat(rotatedPath(logPath(dir, "stdout"), i)); err == nil && fi.Size() > 10 {
			t.Errorf("file .%d has %d bytes", i, fi.Size())
		}
	}
	got, err := Tail(dir, "stdout", 10)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "ab|"+strings.Repeat("x", 25)+"|cd" {
		t.Errorf("Tail = %q", got)
	}
}

func TestFollow(t *testing.T) {
	t.Parallel()
	cfg := shell(`i=0; while [ $i -lt 100 ]; do echo "tick-$i"; i=$((i+1)); sleep 0.02; done; echo end; exec sleep 1000`)
	cfg.MaxLogBytes = 200
	cfg.MaxLogFiles = 3
	s := newSup(t, cfg)
	start(t, s)
	dir := s.cfg.LogDir
	waitLine(t, dir, "stdout", "tick-5", 10*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- Follow(ctx, dir, "stdout", -1, &out) }()

	waitFor(t, "follow to see the end", 15*time.Second, func() bool {
		return strings.Contains(out.String(), "end\n")
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Follow: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "stdout.log.1")); err != nil {
		t.Fatalf("no rotation happened: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) < 10 || lines[len(lines)-1] != "end" {
		t.Fatalf("followed %q", lines)
	}
	// Consecutive ticks from wherever Follow started: no loss, no repeats,
	// across the rotations that happened meanwhile.
	first, err := strconv.Atoi(strings.TrimPrefix(lines[0], "tick-"))
	if err != nil {
		t.Fatalf("first followed line %q", lines[0])
	}
	for i, l := range lines[:len(lines)-1] {
		if want := "tick-" + strconv.Itoa(first+i); l != want {
			t.Fatalf("line %d: %q, want %q (all: %q)", i, l, want, lines)
		}
	}
	if first+len(lines)-1 != 100 {
		t.Errorf("followed ticks %d..%d, want up to 99", first, first+len(lines)-2)
	}
}

// TestFollowManyRotationsBetweenPolls rotates the file several times per
// poll interval: Follow must walk the rotated files it missed.
func TestFollowManyRotationsBetweenPolls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := openLogFile(logPath(dir, "stdout"), 30, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fmt.Fprintf(l, "before\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- Follow(ctx, dir, "stdout", 0, &out) }()
	waitFor(t, "first line", 5*time.Second, func() bool { return out.String() != "" })

	const n = 400
	for i := range n {
		fmt.Fprintf(l, "w%04d\n", i)
		if i%40 == 0 {
			time.Sleep(time.Millisecond) // let some polls fall between
		}
	}
	waitFor(t, "all lines", 10*time.Second, func() bool {
		return strings.HasSuffix(out.String(), fmt.Sprintf("w%04d\n", n-1))
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	want.WriteString("before\n")
	for i := range n {
		fmt.Fprintf(&want, "w%04d\n", i)
	}
	if out.String() != want.String() {
		t.Errorf("followed:\n%s\nwant:\n%s", out.String(), want.String())
	}
}

func TestFollowWaitsForFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- Follow(ctx, dir, "stderr", 0, &out) }()
	if err := os.WriteFile(logPath(dir, "stderr"), []byte("hello\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hello", 5*time.Second, func() bool { return out.String() == "hello\n" })
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := Follow(ctx, dir, "nope", 0, &out); !errors.Is(err, ErrInvalidStream) {
		t.Errorf("Follow of a bad stream: %v", err)
	}
}
