//go:build linux

package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// followPoll is how often Follow looks for new output and rotations.
const followPoll = 100 * time.Millisecond

// chainRetries bounds how often openChain retries when a rotation raced
// the opening of the files.
const chainRetries = 10

func streamFile(dir, stream string) (string, error) {
	if stream != "stdout" && stream != "stderr" {
		return "", fmt.Errorf("%w: %q (want \"stdout\" or \"stderr\")", ErrInvalidStream, stream)
	}
	return logPath(dir, stream), nil
}

// chainFile is one open file of a log chain.
type chainFile struct {
	name string
	f    *os.File
	info os.FileInfo
}

// openChain opens the current log file and the rotated ones, newest first:
// [stream.log, stream.log.1, stream.log.2, ...]. The current file may be
// missing (between the rename and the create of a rotation); rotated files
// are read up to the first missing index.
//
// A rotation running concurrently can make the result inconsistent in two
// ways, both detected and retried after a short pause (the writer holds the
// names in flux only for a few renames):
//   - names shift between our opens, so two names lead to the same file
//     (open descriptors keep pointing at the same data, so comparing
//     identities finds it);
//   - the shift renames the oldest files first, leaving for a moment a gap
//     (.i missing, .i+1 present) that would cut the chain short and hide
//     older files.
//
// After chainRetries the chain is returned as it is: reading stays best
// effort against a writer rotating faster than we can open files.
func openChain(path string) ([]chainFile, error) {
	for attempt := 0; ; attempt++ {
		chain, gap, err := openChainOnce(path)
		if err != nil || (!gap && !hasDuplicate(chain)) || attempt == chainRetries {
			return chain, err
		}
		closeChain(chain)
		time.Sleep(time.Duration(min(attempt+1, 10)) * time.Millisecond)
	}
}

func openChainOnce(path string) (chain []chainFile, gap bool, err error) {
	add := func(name string) (bool, error) {
		f, err := os.Open(name)
		if err != nil {
			if isNotExist(err) {
				return false, nil
			}
			return false, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return false, err
		}
		chain = append(chain, chainFile{name, f, fi})
		return true, nil
	}
	if _, err := add(path); err != nil {
		closeChain(chain)
		return nil, false, fmt.Errorf("open log: %w", err)
	}
	for i := 1; ; i++ {
		ok, err := add(rotatedPath(path, i))
		if err != nil {
			closeChain(chain)
			return nil, false, fmt.Errorf("open log: %w", err)
		}
		if !ok {
			if _, err := os.Lstat(rotatedPath(path, i+1)); err == nil {
				gap = true
			}
			break
		}
	}
	if len(chain) == 0 {
		return nil, false, fmt.Errorf("open log %s: %w", path, fs.ErrNotExist)
	}
	return chain, gap, nil
}

func hasDuplicate(chain []chainFile) bool {
	for i := range chain {
		for j := i + 1; j < len(chain); j++ {
			if os.SameFile(chain[i].info, chain[j].info) {
				return true
			}
		}
	}
	return false
}

func closeChain(chain []chainFile) {
	for _, c := range chain {
		c.f.Close()
	}
}

// Tail returns the last n lines of a stream ("stdout" or "stderr") of the
// process whose LogDir is dir, reading back through the rotated files as
// far as needed. A final line without a newline (still being written) is
// included. It returns an error wrapping fs.ErrNotExist when the stream
// has no log file at all.
func Tail(dir, stream string, n int) ([]string, error) {
	path, err := streamFile(dir, stream)
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	chain, err := openChain(path)
	if err != nil {
		return nil, err
	}
	defer closeChain(chain)

	// Read backwards, chunk by chunk, newest file first, until the data
	// holds n complete lines. The chain is one logical byte stream, so a
	// line cut by a rotation is joined back naturally.
	const chunkSize = 64 << 10
	var chunks [][]byte // newest first
	newlines, need := 0, n
	first := true
	for _, c := range chain {
		off := c.info.Size()
		for off > 0 && newlines < need {
			sz := min(int64(chunkSize), off)
			off -= sz
			buf := make([]byte, sz)
			m, err := c.f.ReadAt(buf, off)
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("read log: %w", err)
			}
			buf = buf[:m]
			if first && len(buf) > 0 {
				first = false
				if buf[len(buf)-1] == '\n' {
					need++ // the stream's final newline ends a line, it starts none
				}
			}
			newlines += bytes.Count(buf, []byte{'\n'})
			chunks = append(chunks, buf)
		}
		if newlines >= need {
			break
		}
	}
	var data []byte
	for i := len(chunks) - 1; i >= 0; i-- {
		data = append(data, chunks[i]...)
	}
	text := strings.TrimSuffix(string(data), "\n")
	if text == "" {
		return []string{}, nil
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// Follow copies to w the bytes appended to a stream's current log file,
// starting at offset from (from < 0: the current end; from beyond the end:
// the file was rotated since, so its start), until ctx ends; then it
// returns nil. It polls every 100ms, and follows rotations: when the file
// it reads has been renamed away, it drains it, then reads any file rotated
// after it, then continues with the new current file. It waits for the
// file to appear if it does not exist yet. Errors from w end it.
func Follow(ctx context.Context, dir, stream string, from int64, w io.Writer) error {
	path, err := streamFile(dir, stream)
	if err != nil {
		return err
	}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	sleep := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			return true
		}
	}

	var f *os.File
	for {
		f, err = os.Open(path)
		if err == nil {
			break
		}
		if !isNotExist(err) {
			return fmt.Errorf("follow log: %w", err)
		}
		if !sleep() {
			return nil
		}
	}
	defer func() { f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("follow log: %w", err)
	}
	off := from
	if off < 0 {
		off = fi.Size()
	} else if off > fi.Size() {
		off = 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("follow log: %w", err)
	}

	buf := make([]byte, 32<<10)
	for {
		pos, err := drain(f, w, buf)
		if err != nil {
			return err
		}
		cur, serr := os.Stat(path)
		ours, ferr := f.Stat()
		switch {
		case serr != nil || ferr != nil:
			// Mid-rotation (current not created yet) or transient: retry.
		case !os.SameFile(cur, ours):
			// Rotated away. The writer closes a file before renaming it,
			// so once drained it is complete.
			if _, err := drain(f, w, buf); err != nil {
				return err
			}
			next, err := catchUp(path, ours, w, buf)
			if err != nil {
				return err
			}
			if next != nil {
				f.Close()
				f = next
				continue // read it right away
			}
		case cur.Size() < pos:
			// Truncated in place (not by us): start over.
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("follow log: %w", err)
			}
			continue
		}
		if !sleep() {
			// Deliver what was written up to the cancellation.
			_, err := drain(f, w, buf)
			return err
		}
	}
}

// drain copies f from its offset to EOF into w and returns the new offset.
func drain(f *os.File, w io.Writer, buf []byte) (int64, error) {
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return 0, fmt.Errorf("follow log: write: %w", werr)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("follow log: %w", err)
		}
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, fmt.Errorf("follow log: %w", err)
	}
	return pos, nil
}

// catchUp is called when the followed file (old) was rotated away and has
// been drained. It copies every rotated file newer than old into w
// (complete, oldest first) and returns the file Follow continues with: the
// current file, unread, or when none exists yet (mid-rotation) the newest
// rotated file, already drained; nil when there is nothing newer than old.
// If old is no longer in the chain (it was rotated off the end), every
// rotated file is newer than what was read, so all are copied.
func catchUp(path string, old os.FileInfo, w io.Writer, buf []byte) (*os.File, error) {
	chain, err := openChain(path)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	idx := len(chain) // position of old; files before it are newer
	for i, c := range chain {
		if os.SameFile(c.info, old) {
			idx = i
			break
		}
	}
	if idx == 0 {
		closeChain(chain)
		return nil, nil
	}
	stop := 0
	if chain[0].name == path {
		stop = 1 // the current file: Follow reads it from its start
	}
	for i := idx - 1; i >= stop; i-- {
		if _, err := drain(chain[i].f, w, buf); err != nil {
			closeChain(chain)
			return nil, err
		}
	}
	closeChain(chain[1:])
	return chain[0].f, nil
}
