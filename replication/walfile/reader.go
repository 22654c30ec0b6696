package walfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// readChunk is the most the Reader asks of the file at once; minAhead
// the frames it asks for first.
const (
	readChunk  = 1 << 20
	minAhead   = 4
	maxScratch = 16 << 20
)

// Reader returns the committed transactions of one WAL generation, one at
// a time, from a Position on. It trusts nothing it reads: a frame belongs
// to the generation only if its salt is the header's, its page number is
// not 0 and its checksum continues the chain from the previous frame (the
// rule SQLite's own recovery applies), and frames count only up to the
// last such frame that carries a commit size. So a Txn returned by Next is
// always the exact continuation of the previous one (or of the Position
// the Reader started from): Txn.Pre equals the previous Post and Txn.Start
// the previous End.
//
// The file may be written while it is read (a live WAL): whatever is not
// yet a whole, verified transaction (an uncommitted tail, a torn frame, the
// leftovers of an older generation or of a rolled-back transaction) makes
// Next return io.EOF without moving; call SetSize when the file grew and
// Next again. A Reader is not safe for concurrent use.
type Reader struct {
	r    io.ReaderAt
	size int64
	h    Header
	fs   int64 // frame size
	pos  Position

	// A tail of frames after pos that verified but had no commit frame yet
	// when last read: [pos.Offset, hintOff) with the chain at hintCk. Only
	// a hint to avoid re-reading a large transaction in progress from its
	// start on every call: when a commit frame turns up after it, the whole
	// transaction is read and verified again from pos, so the hint cannot
	// make Next return anything a fresh Reader would not.
	hintOK    bool
	hintOff   int64
	hintCk    Checksum
	hintFirst [FrameHeaderSize]byte // the header of the frame at pos then

	// Read-ahead of file bytes [cacheOff, cacheOff+len(cache)).
	cache    []byte
	cacheOff int64
	cacheBuf []byte
	ahead    int64 // frames the next fill asks for: grows while reads pay

	scratch []byte      // pages of the transaction being read
	metas   [][2]uint32 // their page numbers and commit sizes
}

// NewReader returns a Reader of the generation headed by h in r, whose
// size is size bytes, starting at from: h.Start() for the beginning of the
// generation, or a Position a previous Reader reached.
func NewReader(r io.ReaderAt, size int64, h Header, from Position) (*Reader, error) {
	if (h.Magic != MagicLE && h.Magic != MagicBE) || !validPageSize(h.PageSize) {
		return nil, fmt.Errorf("%w: magic %#08x, page size %d", ErrBadHeader, h.Magic, h.PageSize)
	}
	if !Continues(h, from) {
		return nil, fmt.Errorf("%w: offset %d salt %08x%08x, header salt %08x%08x",
			ErrBadPosition, from.Offset, from.Salt.S1, from.Salt.S2, h.Salt.S1, h.Salt.S2)
	}
	return &Reader{r: r, size: size, h: h, fs: h.FrameSize(), pos: from}, nil
}

// Header is the header of the generation being read.
func (r *Reader) Header() Header { return r.h }

// Position is the end of the last Txn returned (or the starting Position).
func (r *Reader) Position() Position { return r.pos }

// SetSize tells the Reader the file's size now.
func (r *Reader) SetSize(n int64) {
	r.size = n
	if r.hintOK && r.hintOff > n {
		r.hintOK = false
	}
}

// Size is the size last given.
func (r *Reader) Size() int64 { return r.size }

// Pending is the number of bytes after Position that verified as frames
// of a transaction not committed yet (or never to be) when Next last
// returned io.EOF.
func (r *Reader) Pending() int64 {
	if !r.hintOK {
		return 0
	}
	return r.hintOff - r.pos.Offset
}

// frame returns the fs bytes of the frame at off, or nil when the file
// ends before. readAhead reports that they came from a read that began
// before off (possibly in an earlier call), so they may be older than the
// file's present bytes.
func (r *Reader) frame(off int64) (b []byte, readAhead bool, err error) {
	if off+r.fs > r.size {
		return nil, false, nil
	}
	if off >= r.cacheOff && off+r.fs <= r.cacheOff+int64(len(r.cache)) {
		i := off - r.cacheOff
		return r.cache[i : i+r.fs], true, nil
	}
	return r.fill(off)
}

// fill reads from off into the read-ahead buffer.
func (r *Reader) fill(off int64) ([]byte, bool, error) {
	r.cache = r.cache[:0]
	maxFrames := max(readChunk/r.fs, 1)
	r.ahead = min(max(r.ahead, minAhead), maxFrames)
	want := min(r.ahead*r.fs, (r.size-off)/r.fs*r.fs)
	if want < r.fs {
		return nil, false, nil
	}
	// At the end of a live WAL most of a large read would be stale bytes
	// (an older generation, a rolled-back tail): start small, and read
	// more at a time while the frames go on.
	r.ahead = min(2*r.ahead, maxFrames)
	if int64(len(r.cacheBuf)) < want {
		// Grow to what is asked, at least doubling, up to the chunk.
		n := min(max(want, 2*int64(len(r.cacheBuf))), maxFrames*r.fs)
		r.cacheBuf = make([]byte, n)
	}
	n, err := r.r.ReadAt(r.cacheBuf[:want], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("walfile: read at %d: %w", off, err)
	}
	n = n / int(r.fs) * int(r.fs)
	r.cache, r.cacheOff = r.cacheBuf[:n], off
	if int64(n) < r.fs {
		return nil, false, nil // the file shrank
	}
	return r.cache[:r.fs], false, nil
}

// check verifies the frame b against the chain at prev; ok is false for a
// frame that is not part of the generation at this place.
func (r *Reader) check(b []byte, prev Checksum) (ck Checksum, pgno, commit uint32, ok bool) {
	be := binary.BigEndian
	pgno, commit = be.Uint32(b[0:]), be.Uint32(b[4:])
	if pgno == 0 || be.Uint32(b[8:]) != r.h.Salt.S1 || be.Uint32(b[12:]) != r.h.Salt.S2 {
		return prev, 0, 0, false
	}
	ck = Sum(r.h.BigEndian(), prev, b[:8])
	ck = Sum(r.h.BigEndian(), ck, b[FrameHeaderSize:])
	if ck.S1 != be.Uint32(b[16:]) || ck.S2 != be.Uint32(b[20:]) {
		return prev, 0, 0, false
	}
	return ck, pgno, commit, true
}

// valid returns the frame at off if it continues the chain at prev. A
// frame that fails from read-ahead is read again: the read-ahead may
// predate its writing.
func (r *Reader) valid(off int64, prev Checksum) (b []byte, ck Checksum, pgno, commit uint32, ok bool, err error) {
	b, ahead, err := r.frame(off)
	if err != nil || b == nil {
		return nil, prev, 0, 0, false, err
	}
	ck, pgno, commit, ok = r.check(b, prev)
	if !ok && ahead {
		if b, _, err = r.fill(off); err != nil || b == nil {
			return nil, prev, 0, 0, false, err
		}
		ck, pgno, commit, ok = r.check(b, prev)
	}
	return b, ck, pgno, commit, ok, nil
}

// Next returns the next committed transaction, or io.EOF when there is
// none (yet) in the bytes the Reader may read: Position does not move
// then. Other errors are read errors; Position does not move either.
func (r *Reader) Next() (Txn, error) {
	t, err := r.next()
	// Read-ahead bytes beyond what a call returned may be older than the
	// file when the next call comes, and could still verify (the frames
	// of a rolled-back transaction, since overwritten in place): after a
	// call that found no whole transaction, the next one reads afresh.
	// After a call that returned one, the read-ahead serves the next call
	// (a burst of transactions is read in large chunks); a stale frame
	// there can only end the transaction early, which makes that call
	// return io.EOF and the one after it read afresh.
	if err != nil {
		r.cache = r.cache[:0]
		r.ahead = minAhead
	}
	return t, err
}

func (r *Reader) next() (Txn, error) {
	if r.hintOK {
		found, err := r.resume()
		if err != nil {
			r.hintOK = false
			return Txn{}, err
		}
		if !found && r.hintOK {
			return Txn{}, io.EOF
		}
	}
	return r.fresh()
}

// resume verifies frames after the hint. It reports found when a commit
// frame follows. It keeps the hint (extended if the tail grew) and
// reports !found when the tail grew without a commit, or did not change:
// the first frame of the tail is the same, and the frame after it is not
// whole yet (SQLite writes a frame's header and page in two writes). It
// drops the hint, so that Next reads afresh, when the first frame changed
// (the frames of a rolled-back transaction overwritten by the next one)
// or a whole frame after the tail does not continue it (a page of the
// transaction rewritten in place, whose checksums SQLite computes again
// when it commits).
func (r *Reader) resume() (found bool, err error) {
	var first [FrameHeaderSize]byte
	n, err := r.r.ReadAt(first[:], r.pos.Offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("walfile: read at %d: %w", r.pos.Offset, err)
	}
	if n < len(first) || first != r.hintFirst {
		r.hintOK = false
		return false, nil
	}
	off, ck := r.hintOff, r.hintCk
	progressed := false
	for off+r.fs <= r.size {
		_, nck, _, commit, ok, err := r.valid(off, ck)
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		progressed = true
		off, ck = off+r.fs, nck
		if commit != 0 {
			return true, nil
		}
	}
	if !progressed && off+r.fs <= r.size {
		r.hintOK = false
		return false, nil
	}
	r.hintOff, r.hintCk = off, ck
	return false, nil
}

// Rescan makes the next call of Next read from Position afresh, forgetting
// what it knows of a transaction in progress. Next does so by itself when
// it sees that the tail changed; a caller that polls may call Rescan now
// and then for the case it cannot see (a rolled-back transaction's tail
// overwritten in place by one that begins with the very same frame).
func (r *Reader) Rescan() { r.hintOK = false }

// fresh reads and verifies from Position.
func (r *Reader) fresh() (Txn, error) {
	ps := int64(r.h.PageSize)
	off, ck := r.pos.Offset, r.pos.Checksum
	data := r.scratch[:0]
	metas := r.metas[:0]
	defer func() {
		r.scratch, r.metas = data[:0], metas[:0]
		if cap(r.scratch) > maxScratch {
			r.scratch, r.metas = nil, nil // do not keep a huge transaction's worth
		}
	}()
	for {
		b, nck, pgno, commit, ok, err := r.valid(off, ck)
		if err != nil {
			r.hintOK = false
			return Txn{}, err
		}
		if !ok {
			break
		}
		if len(metas) == 0 {
			copy(r.hintFirst[:], b[:FrameHeaderSize])
		}
		data = append(data, b[FrameHeaderSize:]...)
		metas = append(metas, [2]uint32{pgno, commit})
		off, ck = off+r.fs, nck
		if commit == 0 {
			continue
		}
		// One allocation of the exact size for the pages; the scratch
		// buffer that gathered them serves the next call.
		pages := make([]byte, len(data))
		copy(pages, data)
		frames := make([]Frame, len(metas))
		for i, m := range metas {
			lo := int64(i) * ps
			frames[i] = Frame{Pgno: m[0], CommitSize: m[1], Data: pages[lo : lo+ps : lo+ps]}
		}
		t := Txn{
			Salt:       r.h.Salt,
			PageSize:   r.h.PageSize,
			Frames:     frames,
			CommitSize: commit,
			Pre:        r.pos.Checksum,
			Post:       ck,
			Start:      r.pos.Offset,
			End:        off,
			BigEndian:  r.h.BigEndian(),
		}
		r.pos = Position{Salt: r.h.Salt, Offset: off, Checksum: ck}
		r.hintOK = false
		return t, nil
	}
	r.hintOK = off > r.pos.Offset
	r.hintOff, r.hintCk = off, ck
	return Txn{}, io.EOF
}
