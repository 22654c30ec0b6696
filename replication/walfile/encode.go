package walfile

import (
	"encoding/binary"
	"fmt"
)

// Encoder builds a WAL image in memory the way SQLite writes one: a sealed
// header, then frames whose checksums continue the chain. It is for tests,
// fuzz seeds and tools; SQLite writes the real ones.
type Encoder struct {
	h   Header
	buf []byte
	ck  Checksum
}

// NewEncoder starts a WAL image with header h (Magic, Version, PageSize,
// CheckpointSeq and Salt as given; the checksum is computed). A zero Magic
// or Version takes MagicLE and Version.
func NewEncoder(h Header) *Encoder {
	if h.Magic == 0 {
		h.Magic = MagicLE
	}
	if h.Version == 0 {
		h.Version = Version
	}
	h = h.Seal()
	e := &Encoder{h: h, ck: h.Checksum}
	e.buf, _ = h.AppendBinary(nil)
	return e
}

// Header is the sealed header of the image.
func (e *Encoder) Header() Header { return e.h }

// AppendFrame appends a frame for page pgno with the given commit size (0
// for a frame that does not end a transaction); data must be PageSize
// bytes. It returns the frame's offset.
func (e *Encoder) AppendFrame(pgno, commitSize uint32, data []byte) int64 {
	if len(data) != int(e.h.PageSize) {
		panic(fmt.Sprintf("walfile.Encoder: page of %d bytes, page size %d", len(data), e.h.PageSize))
	}
	off := int64(len(e.buf))
	var fh [FrameHeaderSize]byte
	be := binary.BigEndian
	be.PutUint32(fh[0:], pgno)
	be.PutUint32(fh[4:], commitSize)
	be.PutUint32(fh[8:], e.h.Salt.S1)
	be.PutUint32(fh[12:], e.h.Salt.S2)
	e.ck = Sum(e.h.BigEndian(), e.ck, fh[:8])
	e.ck = Sum(e.h.BigEndian(), e.ck, data)
	be.PutUint32(fh[16:], e.ck.S1)
	be.PutUint32(fh[20:], e.ck.S2)
	e.buf = append(e.buf, fh[:]...)
	e.buf = append(e.buf, data...)
	return off
}

// Bytes is the image so far (not a copy).
func (e *Encoder) Bytes() []byte { return e.buf }

// Position is the place after the last frame appended.
func (e *Encoder) Position() Position {
	return Position{Salt: e.h.Salt, Offset: int64(len(e.buf)), Checksum: e.ck}
}
