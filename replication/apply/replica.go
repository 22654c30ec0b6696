//go:build linux

package apply

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/ozanturksever/go-cluster/replication/walfile"
	"golang.org/x/sys/unix"
)

// Stage names a point inside Apply (and the position write) at which a
// test hook runs; a hook that returns an error stops Apply there, as a
// crash would, leaving the files as they are at that point.
type Stage int

const (
	// StageFrameWritten: after the page of frame i (counted across the
	// batch) was written, not synced.
	StageFrameWritten Stage = iota
	// StageTruncated: after entry i's truncation to its commit size;
	// after the last entry's, the data fsync follows.
	StageTruncated
	// StageDataSynced: after the data fsync, before the position write.
	StageDataSynced
	// StagePositionTempWritten: the new position is in position.json.tmp,
	// fsynced, not yet renamed.
	StagePositionTempWritten
	// StagePositionRenamed: renamed over position.json, the directory not
	// yet fsynced.
	StagePositionRenamed
)

// Option configures OpenReplica and RestoreSnapshot.
type Option func(*options)

type options struct {
	hook func(Stage, int) error
}

// WithHook sets a function called at each Stage of Apply, for fault
// injection in tests; an error it returns aborts Apply at that point.
func WithHook(h func(stage Stage, frame int) error) Option {
	return func(o *options) { o.hook = h }
}

func callHook(h func(Stage, int) error, s Stage, i int) error {
	if h == nil {
		return nil
	}
	return h(s, i)
}

// Replica is a standby's copy of the leader's database: replica.db and
// its applied position in one directory. Its methods are safe for
// concurrent use; they run one at a time.
type Replica struct {
	mu      sync.Mutex
	dir     string
	f       *os.File // replica.db, open read-write for the Replica's life
	lock    *os.File // dir/LOCK, flock(2)ed
	applied Applied
	written Applied // what position.json says (behind applied after ApplyBatchDeferred)
	opts    options
	closed  bool
}

// OpenReplica opens (creating if needed) the replica in dir. A replica
// without position.json is empty: its replica.db, if any, is truncated,
// because no position vouches for its content. Leftover temporary files of
// an interrupted Apply or restore are removed.
func OpenReplica(dir string, opts ...Option) (*Replica, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	r, err := openLocked(dir, lock, opts)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return r, nil
}

func openLocked(dir string, lock *os.File, opts []Option) (*Replica, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	for _, name := range []string{PositionName + tmpSuffix, DBName + tmpSuffix} {
		if err := removeIfExists(filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	a, ok, err := readPosition(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, DBName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if !ok || (a.Seq == 0 && a.CommitSize == 0) {
		// Nothing applied: whatever the file holds is not vouched for.
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, err
		}
		if err := fdatasync(f); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return &Replica{dir: dir, f: f, lock: lock, applied: a, written: a, opts: o}, nil
}

// lockDir takes an exclusive flock(2) on dir/LOCK. flock locks are
// independent of the POSIX record locks SQLite uses, and the LOCK file is
// no database file, so neither disturbs the other.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, err
	}
	return f, nil
}

// Dir returns the replica's directory.
func (r *Replica) Dir() string { return r.dir }

// Path returns the path of replica.db.
func (r *Replica) Path() string { return filepath.Join(r.dir, DBName) }

// Applied returns the applied position.
func (r *Replica) Applied() Applied {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// Close writes a position ApplyBatchDeferred left unwritten and releases
// the replica's file and directory lock.
func (r *Replica) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	perr := r.syncPositionLocked()
	r.closed = true
	err := errors.Join(perr, r.f.Close())
	if lerr := r.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// Apply applies transaction t, the log's entry seq of epoch epoch, to the
// replica. It refuses, leaving the replica untouched:
//
//   - seq != Applied().Seq+1: a *SeqError (ErrGap; ErrAlreadyApplied too
//     for a seq already applied, e.g. a redelivery);
//   - epoch < Applied().Epoch: ErrStaleEpoch;
//   - t in the applied WAL generation (same salt) whose Pre is not the
//     applied checksum, the applied position being past a frame (offset
//     > 32): a *ChainError (ErrChainBroken). A t of another
//     generation (different salt, Pre being its new WAL header's checksum)
//     is accepted: the log's seq vouches for the continuity across the
//     leader's WAL restart;
//   - a page size that is invalid or not the replica's (ErrPageSize), a
//     transaction without frames or commit size (ErrInvalidTxn), a frame
//     with page number 0 or data not one page long (a *FrameError).
//
// Otherwise it writes every frame's page at (pgno-1)*pageSize, in order
// (a page repeated in t: the later image wins), truncates the file to
// CommitSize pages, fsyncs it, and then records the new position durably
// (see the package documentation for why that order makes a crash at any
// point recoverable by applying seq again). An error after the first
// write leaves the applied position unchanged; applying the same t again
// completes it.
func (r *Replica) Apply(t walfile.Txn, seq, epoch uint64) error {
	return r.ApplyBatch([]Entry{{Txn: t, Seq: seq, Epoch: epoch}})
}

// Entry is one log entry for ApplyBatch.
type Entry struct {
	Txn        walfile.Txn
	Seq, Epoch uint64
	Cursor     uint64 // recorded as Applied.Cursor; 0 keeps the applied one
}

// ApplyBatch applies consecutive log entries with one data fsync and one
// position write for all of them: what Apply does for each entry in
// turn, page writes and truncation included, except that the file is
// fsynced and the position (that of the last entry) written once, at the
// end. Every entry is checked, against the applied position and the
// entries before it, before anything is written; a refused entry refuses
// the batch, leaving the replica untouched. The crash argument is the
// same as Apply's with the batch in the place of one transaction: the
// position on disk is the one before the batch until the batch's pages
// are durable, and re-applying the entries from that position on, in
// order, redoes every page write and truncation the interrupted attempt
// may have done, the last one deciding as before.
func (r *Replica) ApplyBatch(entries []Entry) error {
	return r.applyBatch(entries, true)
}

// ApplyBatchDeferred is ApplyBatch without the position write: the pages
// are durable when it returns (the data fsync), and Applied says so, but
// position.json keeps the last written position until SyncPosition (or
// ApplyBatch, or Close). A standby applying a stream of small batches
// saves two of its three fsyncs this way. A crash meanwhile leaves the
// file ahead of the written position, which the crash argument in the
// package documentation covers: the entries after the written position,
// applied again in order, redo every page write and truncation (the last
// deciding), so the caller resumes the log at the written position.
func (r *Replica) ApplyBatchDeferred(entries []Entry) error {
	return r.applyBatch(entries, false)
}

// SyncPosition writes the applied position if ApplyBatchDeferred left it
// unwritten.
func (r *Replica) SyncPosition() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	return r.syncPositionLocked()
}

func (r *Replica) syncPositionLocked() error {
	if r.written == r.applied {
		return nil
	}
	if err := writePosition(r.dir, r.applied, r.opts.hook); err != nil {
		return err
	}
	r.written = r.applied
	return nil
}

func (r *Replica) applyBatch(entries []Entry, writePos bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if len(entries) == 0 {
		return nil
	}
	next := r.applied
	for _, e := range entries {
		if err := check(next, e.Txn, e.Seq, e.Epoch); err != nil {
			return err
		}
		cursor := next.Cursor
		if e.Cursor != 0 {
			cursor = e.Cursor
		}
		next = Applied{
			Seq:        e.Seq,
			Epoch:      e.Epoch,
			Cursor:     cursor,
			Position:   walfile.Position{Salt: e.Txn.Salt, Offset: e.Txn.End, Checksum: e.Txn.Post},
			PageSize:   e.Txn.PageSize,
			CommitSize: e.Txn.CommitSize,
		}
	}
	h := r.opts.hook
	frame := 0
	for k, e := range entries {
		ps := int64(e.Txn.PageSize)
		for _, fr := range e.Txn.Frames {
			if _, err := r.f.WriteAt(fr.Data, int64(fr.Pgno-1)*ps); err != nil {
				return err
			}
			if err := callHook(h, StageFrameWritten, frame); err != nil {
				return err
			}
			frame++
		}
		if err := r.f.Truncate(int64(e.Txn.CommitSize) * ps); err != nil {
			return err
		}
		if err := callHook(h, StageTruncated, k); err != nil {
			return err
		}
	}
	if err := fdatasync(r.f); err != nil {
		return err
	}
	if err := callHook(h, StageDataSynced, 0); err != nil {
		return err
	}
	prev := r.applied
	r.applied = next
	if !writePos {
		return nil
	}
	if err := r.syncPositionLocked(); err != nil {
		// As documented: a failed Apply leaves the applied position as
		// it was (the same entries may be applied again).
		r.applied = prev
		return err
	}
	return nil
}

// check decides whether t may be applied after a; it touches nothing.
func check(a Applied, t walfile.Txn, seq, epoch uint64) error {
	if seq != a.Seq+1 {
		return &SeqError{Applied: a.Seq, Got: seq}
	}
	if epoch < a.Epoch {
		return fmt.Errorf("%w: epoch %d, applied epoch %d", ErrStaleEpoch, epoch, a.Epoch)
	}
	if a.Position.Offset > walfile.HeaderSize && t.Salt == a.Position.Salt && t.Pre != a.Position.Checksum {
		return &ChainError{
			Seq:      seq,
			Want:     [2]uint32{a.Position.Checksum.S1, a.Position.Checksum.S2},
			Got:      [2]uint32{t.Pre.S1, t.Pre.S2},
			SaltSame: true,
		}
	}
	if !validPageSize(t.PageSize) {
		return fmt.Errorf("%w: invalid page size %d", ErrPageSize, t.PageSize)
	}
	if a.PageSize != 0 && t.PageSize != a.PageSize {
		return fmt.Errorf("%w: txn page size %d, replica page size %d", ErrPageSize, t.PageSize, a.PageSize)
	}
	if len(t.Frames) == 0 {
		return fmt.Errorf("%w: no frames", ErrInvalidTxn)
	}
	if t.CommitSize == 0 {
		return fmt.Errorf("%w: commit size 0", ErrInvalidTxn)
	}
	for i, fr := range t.Frames {
		switch {
		case fr.Pgno == 0:
			return &FrameError{Index: i, Pgno: fr.Pgno, Len: len(fr.Data), PageSize: t.PageSize, Reason: "page number 0"}
		case len(fr.Data) != int(t.PageSize):
			return &FrameError{Index: i, Pgno: fr.Pgno, Len: len(fr.Data), PageSize: t.PageSize, Reason: "data is not one page"}
		case fr.CommitSize != 0 && i != len(t.Frames)-1:
			return &FrameError{Index: i, Pgno: fr.Pgno, Len: len(fr.Data), PageSize: t.PageSize, Reason: "commit frame before the last frame"}
		}
	}
	if last := t.Frames[len(t.Frames)-1]; last.CommitSize != 0 && last.CommitSize != t.CommitSize {
		return fmt.Errorf("%w: commit frame says %d pages, txn says %d", ErrInvalidTxn, last.CommitSize, t.CommitSize)
	}
	return nil
}
