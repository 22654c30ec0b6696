// Package wallog is an app's replication log in JetStream: one stream, one
// subject, written only by the app's leader and read by its standbys.
//
// # Entries and messages
//
// The log holds three kinds of entry:
//
//	txn       one committed transaction captured from the leader's WAL,
//	          numbered by Seq (1, 2, 3, ... without gaps across epochs)
//	epoch     a leader's first entry: it fences older leaders off (below)
//	snapshot  the database is replaced by an object-store snapshot whose
//	          state is after transaction Seq: the leader lost track of its
//	          WAL and starts over from a copy
//
// A txn entry that does not fit in one NATS message (the server's max
// payload, 1 MiB by default) is cut into parts, one message each; all of an
// entry's parts carry the same headers, and a reader hands the entry out only
// when every part arrived in order. The body is the frames, each as page
// number (4 bytes, big endian), commit size (4) and the page. Every message
// carries the entry's epoch, seq, pre and post checksums, so that a reader
// verifies the entry (walfile.Txn.Verify) before anything is applied: a
// corrupt or truncated entry is refused, never applied.
//
// # Fencing
//
// Every append names the stream sequence it expects to be the last one
// (Nats-Expected-Last-Sequence). A leader appends its epoch entry expecting
// the last sequence it found after catching up, and from then on expects
// its own previous message: once a new leader's epoch entry is in, an old
// leader's next append fails (ErrFenced), whatever its clock or lease
// believes, and it cannot get a single frame into the log.
package wallog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ozanturksever/go-cluster/replication/walfile"
)

// Kind is an entry's kind.
type Kind string

// The kinds of entry.
const (
	KindTxn      Kind = "txn"
	KindEpoch    Kind = "epoch"
	KindSnapshot Kind = "snapshot"
)

// Errors; test with errors.Is.
var (
	// ErrFenced: an append expected another last sequence: a newer
	// leader appended since (or this one's view of the log is stale).
	ErrFenced = errors.New("wallog: fenced off by a newer append")
	// ErrCorrupt: a message or a reassembled entry is malformed or does
	// not verify.
	ErrCorrupt = errors.New("wallog: corrupt log entry")
	// ErrTruncated: an entry's parts are missing or out of order.
	ErrTruncated = errors.New("wallog: truncated log entry")
)

// Entry is one log entry.
type Entry struct {
	Kind  Kind
	Epoch uint64
	// Seq: for a txn, its number; for a snapshot, the last transaction
	// its state includes; 0 for an epoch entry.
	Seq uint64
	// Txn is a txn entry's transaction.
	Txn walfile.Txn
	// Snapshot is a snapshot entry's object name.
	Snapshot string
	// Node is the leader that appended the entry.
	Node string
	// Time is when the leader captured the transaction (its clock).
	Time time.Time
	// Bytes is the WAL bytes the log carried up to and including this
	// entry, counted from the log's start: the difference between two
	// readers' Bytes is how far one is behind in bytes.
	Bytes uint64
	// FirstStreamSeq and StreamSeq are the stream sequences of the
	// entry's first and last messages (set by Append and by a Reader).
	FirstStreamSeq, StreamSeq uint64
}

// Message headers.
const (
	hKind     = "Gcl-Kind"
	hEpoch    = "Gcl-Epoch"
	hSeq      = "Gcl-Seq"
	hPart     = "Gcl-Part" // "i/n", from 1
	hNode     = "Gcl-Node"
	hTime     = "Gcl-Time" // unix nanoseconds
	hBytes    = "Gcl-Bytes"
	hSnapshot = "Gcl-Snapshot"
	hTxn      = "Gcl-Txn" // page size, commit size, salt, pre, post, start, end, byte order
)

const frameHead = 8 // page number and commit size in the body

// txnHeader encodes what a Txn carries besides its frames.
func txnHeader(t walfile.Txn) string {
	order := "le"
	if t.BigEndian {
		order = "be"
	}
	return fmt.Sprintf("%d %d %08x%08x %08x%08x %08x%08x %d %d %s",
		t.PageSize, t.CommitSize, t.Salt.S1, t.Salt.S2, t.Pre.S1, t.Pre.S2, t.Post.S1, t.Post.S2, t.Start, t.End, order)
}

func parseTxnHeader(s string) (walfile.Txn, error) {
	var t walfile.Txn
	var salt, pre, post, order string
	if _, err := fmt.Sscanf(s, "%d %d %s %s %s %d %d %s", &t.PageSize, &t.CommitSize, &salt, &pre, &post, &t.Start, &t.End, &order); err != nil {
		return t, fmt.Errorf("%w: %s header %q: %v", ErrCorrupt, hTxn, s, err)
	}
	var err error
	pair := func(s string) (a, b uint32) {
		if len(s) != 16 {
			err = fmt.Errorf("%w: %s header %q: bad checksum %q", ErrCorrupt, hTxn, s, s)
			return 0, 0
		}
		x, e1 := strconv.ParseUint(s[:8], 16, 32)
		y, e2 := strconv.ParseUint(s[8:], 16, 32)
		if e1 != nil || e2 != nil {
			err = fmt.Errorf("%w: %s header: bad hex %q", ErrCorrupt, hTxn, s)
		}
		return uint32(x), uint32(y)
	}
	t.Salt.S1, t.Salt.S2 = pair(salt)
	t.Pre.S1, t.Pre.S2 = pair(pre)
	t.Post.S1, t.Post.S2 = pair(post)
	switch order {
	case "be":
		t.BigEndian = true
	case "le":
	default:
		return t, fmt.Errorf("%w: %s header: byte order %q", ErrCorrupt, hTxn, order)
	}
	return t, err
}

// encodeFrames is a txn entry's body.
func encodeFrames(t walfile.Txn) []byte {
	b := make([]byte, 0, len(t.Frames)*(frameHead+int(t.PageSize)))
	for _, f := range t.Frames {
		b = append(b, byte(f.Pgno>>24), byte(f.Pgno>>16), byte(f.Pgno>>8), byte(f.Pgno),
			byte(f.CommitSize>>24), byte(f.CommitSize>>16), byte(f.CommitSize>>8), byte(f.CommitSize))
		b = append(b, f.Data...)
	}
	return b
}

// decodeFrames fills t.Frames from a body and verifies the transaction.
func decodeFrames(t *walfile.Txn, body []byte) error {
	if t.PageSize < 512 || t.PageSize > 65536 || t.PageSize&(t.PageSize-1) != 0 {
		return fmt.Errorf("%w: page size %d", ErrCorrupt, t.PageSize)
	}
	fs := frameHead + int(t.PageSize)
	if len(body) == 0 || len(body)%fs != 0 {
		return fmt.Errorf("%w: body of %d bytes is not whole frames of %d", ErrTruncated, len(body), fs)
	}
	t.Frames = make([]walfile.Frame, len(body)/fs)
	for i := range t.Frames {
		b := body[i*fs : (i+1)*fs : (i+1)*fs]
		t.Frames[i] = walfile.Frame{
			Pgno:       uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]),
			CommitSize: uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7]),
			Data:       b[frameHead:],
		}
	}
	if err := t.Verify(); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return nil
}

func parsePart(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(a)
		if err == nil {
			n, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || i < 1 || n < i {
		return 0, 0, fmt.Errorf("%w: %s header %q", ErrCorrupt, hPart, s)
	}
	return i, n, nil
}
