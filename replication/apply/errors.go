package apply

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; the typed errors below match them with errors.Is.
var (
	// ErrGap: the transaction's seq is not the applied seq + 1.
	ErrGap = errors.New("apply: seq does not follow the applied seq")
	// ErrAlreadyApplied: the seq is at or below the applied seq (a
	// redelivery). A SeqError carrying it also matches ErrGap.
	ErrAlreadyApplied = errors.New("apply: seq already applied")
	// ErrChainBroken: same WAL generation, but the transaction's Pre
	// checksum is not the applied position's checksum.
	ErrChainBroken = errors.New("apply: WAL checksum chain broken")
	// ErrStaleEpoch: the transaction's epoch is lower than the applied one.
	ErrStaleEpoch = errors.New("apply: epoch lower than the applied epoch")
	// ErrPageSize: the page size is invalid or differs from the replica's.
	ErrPageSize = errors.New("apply: page size mismatch")
	// ErrInvalidTxn: the transaction is malformed (no frames, no commit
	// size, a bad frame). A FrameError also matches it.
	ErrInvalidTxn = errors.New("apply: invalid transaction")
	// ErrInvalidFrame: a frame has page number 0 or data not one page long.
	ErrInvalidFrame = errors.New("apply: invalid frame")
	// ErrClosed: the Replica is closed.
	ErrClosed = errors.New("apply: replica closed")
	// ErrLocked: another Replica (or restore) holds the directory.
	ErrLocked = errors.New("apply: replica directory in use")
	// ErrSnapshotMismatch: a snapshot stream does not match its info
	// (length, SHA-256 or page size).
	ErrSnapshotMismatch = errors.New("apply: snapshot does not match its info")
	// ErrCheckFailed: PRAGMA quick_check did not say "ok".
	ErrCheckFailed = errors.New("apply: replica check failed")
	// ErrEmpty: the replica holds no database (nothing applied).
	ErrEmpty = errors.New("apply: replica is empty")
	// ErrBadPosition: position.json is unreadable or inconsistent.
	ErrBadPosition = errors.New("apply: bad position file")
	// ErrNoWALPosition: the WAL position of a snapshot's read transaction
	// could not be read although the database is in WAL mode.
	ErrNoWALPosition = errors.New("apply: WAL position of the snapshot unavailable")
)

// SeqError reports a seq that does not follow the applied one. It matches
// ErrGap, and also ErrAlreadyApplied when Got <= Applied.
type SeqError struct {
	Applied, Got uint64
}

func (e *SeqError) Error() string {
	if e.Got <= e.Applied {
		return fmt.Sprintf("apply: seq %d already applied (applied seq %d)", e.Got, e.Applied)
	}
	return fmt.Sprintf("apply: gap: seq %d after applied seq %d, want %d", e.Got, e.Applied, e.Applied+1)
}

func (e *SeqError) Is(target error) bool {
	return target == ErrGap || (target == ErrAlreadyApplied && e.Got <= e.Applied)
}

// ChainError reports a transaction whose Pre checksum does not continue
// the applied chain. It matches ErrChainBroken.
type ChainError struct {
	Seq      uint64
	Want     [2]uint32 // the applied position's checksum
	Got      [2]uint32 // the transaction's Pre
	SaltSame bool
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("apply: seq %d: chain broken: Pre checksum %08x/%08x, applied checksum %08x/%08x",
		e.Seq, e.Got[0], e.Got[1], e.Want[0], e.Want[1])
}

func (e *ChainError) Unwrap() error { return ErrChainBroken }

// FrameError reports a malformed frame. It matches ErrInvalidFrame and
// ErrInvalidTxn.
type FrameError struct {
	Index    int // index in Txn.Frames
	Pgno     uint32
	Len      int // len(Data)
	PageSize uint32
	Reason   string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("apply: frame %d (page %d, %d bytes, page size %d): %s",
		e.Index, e.Pgno, e.Len, e.PageSize, e.Reason)
}

func (e *FrameError) Is(target error) bool {
	return target == ErrInvalidFrame || target == ErrInvalidTxn
}

// CheckError reports a failed PRAGMA quick_check: its first messages.
type CheckError struct {
	Messages []string
}

func (e *CheckError) Error() string {
	return "apply: replica check failed: " + strings.Join(e.Messages, "; ")
}

func (e *CheckError) Unwrap() error { return ErrCheckFailed }
