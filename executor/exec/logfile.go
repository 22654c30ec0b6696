//go:build linux

package exec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// Log file and directory modes. The logs may contain whatever the app
// prints, so they are not world-readable.
const (
	logFileMode = 0o640
	logDirMode  = 0o750
)

// logFile is an io.Writer appending to dir/<stream>.log and rotating it by
// size: stream.log → stream.log.1 → ... → stream.log.<keep>, the oldest
// being overwritten. It is shared by the runs of one supervisor, so output
// of successive restarts lands in the same file.
type logFile struct {
	path string
	max  int64
	keep int

	mu   sync.Mutex
	f    *os.File // nil after a failed rotation until an open succeeds
	size int64
}

func logPath(dir, stream string) string { return filepath.Join(dir, stream+".log") }

func rotatedPath(path string, i int) string { return path + "." + strconv.Itoa(i) }

func openLogFile(path string, maxBytes int64, keep int) (*logFile, error) {
	l := &logFile{path: path, max: maxBytes, keep: keep}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *logFile) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, logFileMode)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log: %w", err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first whenever p would push the file past max.
// A chunk is cut after its last newline that still fits, so lines stay
// whole within one file when they can; a line longer than max is split.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		if err := l.open(); err != nil {
			return 0, err
		}
	}
	written := 0
	for len(p) > 0 {
		room := l.max - l.size
		if int64(len(p)) <= room {
			n, err := l.write(p)
			return written + n, err
		}
		cut := 0
		if room > 0 {
			cut = bytes.LastIndexByte(p[:room], '\n') + 1
		}
		if cut == 0 && l.size == 0 {
			cut = int(room) // a single line longer than a whole file
		}
		if cut > 0 {
			n, err := l.write(p[:cut])
			written += n
			if err != nil {
				return written, err
			}
			p = p[cut:]
		}
		if err := l.rotate(); err != nil {
			if l.f == nil {
				return written, err
			}
			// Could not shift the old files: keep appending to the current
			// one rather than lose output; the next write tries again.
			n, werr := l.write(p)
			return written + n, errors.Join(err, werr)
		}
	}
	return written, nil
}

func (l *logFile) write(p []byte) (int, error) {
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// rotate shifts stream.log.i to .i+1 (overwriting .keep), the current file
// to .1, and starts an empty current file. The old file is closed before it
// is renamed: a reader that sees the rename (Follow) can then drain it
// knowing nothing more will be appended.
func (l *logFile) rotate() error {
	for i := l.keep - 1; i >= 1; i-- {
		if err := os.Rename(rotatedPath(l.path, i), rotatedPath(l.path, i+1)); err != nil && !isNotExist(err) {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	l.f.Close()
	l.f = nil
	if err := os.Rename(l.path, rotatedPath(l.path, 1)); err != nil && !isNotExist(err) {
		// Reopen the unrotated file and carry on with it.
		if oerr := l.open(); oerr != nil {
			return errors.Join(fmt.Errorf("rotate log: %w", err), oerr)
		}
		return fmt.Errorf("rotate log: %w", err)
	}
	return l.open()
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
