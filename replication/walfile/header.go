package walfile

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Constants of the WAL header.
const (
	// MagicLE marks a WAL whose checksums read the data as little-endian
	// 32-bit words (written by a little-endian machine).
	MagicLE uint32 = 0x377f0682
	// MagicBE marks a WAL whose checksums read the data as big-endian
	// 32-bit words.
	MagicBE uint32 = 0x377f0683
	// Version is the only WAL format version SQLite has ever written.
	Version uint32 = 3007000

	MinPageSize = 512
	MaxPageSize = 65536
)

// Sentinel errors; test with errors.Is. The returned errors wrap them with
// the detail.
var (
	// ErrBadHeader: the 32 bytes are not a WAL header (short, bad magic,
	// unknown version, impossible page size).
	ErrBadHeader = errors.New("walfile: bad WAL header")
	// ErrBadChecksum: the header's checksum does not match its bytes (a
	// torn or half-written header).
	ErrBadChecksum = errors.New("walfile: bad WAL header checksum")
	// ErrBadPosition: a Position that cannot be a place in the given
	// generation (other salt, not on a frame boundary, before the first
	// frame, or a generation start whose checksum is not the header's).
	ErrBadPosition = errors.New("walfile: position not in this WAL generation")
)

// Header is the parsed 32-byte WAL header. All fields are stored
// big-endian in the file, whatever the checksum byte order.
type Header struct {
	Magic         uint32
	Version       uint32
	PageSize      uint32 // 512..65536, a power of two (65536 is stored as is)
	CheckpointSeq uint32
	Salt          Salt
	Checksum      Checksum // of the first 24 bytes; the start of the frame chain
}

// BigEndian reports whether the checksums of this WAL read big-endian words.
func (h Header) BigEndian() bool { return h.Magic == MagicBE }

// FrameSize is the size in bytes of one frame: header plus page.
func (h Header) FrameSize() int64 { return FrameHeaderSize + int64(h.PageSize) }

// Start is the Position of the first frame of this generation: where a
// reader of a freshly restarted WAL begins.
func (h Header) Start() Position {
	return Position{Salt: h.Salt, Offset: HeaderSize, Checksum: h.Checksum}
}

// AppendBinary appends the 32-byte encoding of h, with h.Checksum as given
// (use Seal to compute it).
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	var buf [HeaderSize]byte
	h.put(buf[:])
	return append(b, buf[:]...), nil
}

func (h Header) put(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b[0:], h.Magic)
	be.PutUint32(b[4:], h.Version)
	be.PutUint32(b[8:], h.PageSize)
	be.PutUint32(b[12:], h.CheckpointSeq)
	be.PutUint32(b[16:], h.Salt.S1)
	be.PutUint32(b[20:], h.Salt.S2)
	be.PutUint32(b[24:], h.Checksum.S1)
	be.PutUint32(b[28:], h.Checksum.S2)
}

// Seal returns h with Checksum computed over its first 24 bytes, as SQLite
// writes it.
func (h Header) Seal() Header {
	var buf [HeaderSize]byte
	h.put(buf[:])
	h.Checksum = Sum(h.BigEndian(), Checksum{}, buf[:24])
	return h
}

// validPageSize reports whether n is a page size SQLite can use in a WAL.
func validPageSize(n uint32) bool {
	return n >= MinPageSize && n <= MaxPageSize && n&(n-1) == 0
}

// ParseHeader parses and verifies the WAL header at the start of b (at
// least HeaderSize bytes). Like SQLite's own recovery it rejects a header
// with another magic, version or page size, and one whose checksum does not
// match: such a WAL has no valid frames.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, need %d", ErrBadHeader, len(b), HeaderSize)
	}
	be := binary.BigEndian
	h := Header{
		Magic:         be.Uint32(b[0:]),
		Version:       be.Uint32(b[4:]),
		PageSize:      be.Uint32(b[8:]),
		CheckpointSeq: be.Uint32(b[12:]),
		Salt:          Salt{be.Uint32(b[16:]), be.Uint32(b[20:])},
		Checksum:      Checksum{be.Uint32(b[24:]), be.Uint32(b[28:])},
	}
	if h.Magic != MagicLE && h.Magic != MagicBE {
		return Header{}, fmt.Errorf("%w: magic %#08x", ErrBadHeader, h.Magic)
	}
	if h.Version != Version {
		return Header{}, fmt.Errorf("%w: version %d", ErrBadHeader, h.Version)
	}
	if !validPageSize(h.PageSize) {
		return Header{}, fmt.Errorf("%w: page size %d", ErrBadHeader, h.PageSize)
	}
	if sum := Sum(h.BigEndian(), Checksum{}, b[:24]); sum != h.Checksum {
		return Header{}, fmt.Errorf("%w: stored %08x%08x, computed %08x%08x",
			ErrBadChecksum, h.Checksum.S1, h.Checksum.S2, sum.S1, sum.S2)
	}
	return h, nil
}

// Continues reports whether p is a possible place in the generation that h
// heads: same salt, on a frame boundary, and, at the generation's start,
// the header's checksum. A false result after a WAL was re-read means the
// WAL restarted (new salt) since p was taken; whether that lost anything
// is for the caller to decide (it must have read the old generation to its
// last commit). A true result is necessary, not sufficient: the frames
// after p prove the rest when their checksums continue p.Checksum.
func Continues(h Header, p Position) bool {
	if p.Salt != h.Salt || p.Offset < HeaderSize || !validPageSize(h.PageSize) {
		return false
	}
	if (p.Offset-HeaderSize)%h.FrameSize() != 0 {
		return false
	}
	if p.Offset == HeaderSize && p.Checksum != h.Checksum {
		return false
	}
	return true
}

// Sum continues SQLite's WAL checksum from prev over b, whose length must
// be a multiple of 8: for each pair of 32-bit words x0, x1 (read
// big-endian if bigEndian, else little-endian), s1 += x0 + s2 and
// s2 += x1 + s1, with 32-bit wrap-around.
func Sum(bigEndian bool, prev Checksum, b []byte) Checksum {
	if len(b)%8 != 0 {
		panic(fmt.Sprintf("walfile.Sum: length %d is not a multiple of 8", len(b)))
	}
	s1, s2 := prev.S1, prev.S2
	if bigEndian {
		for len(b) >= 32 {
			s1 += binary.BigEndian.Uint32(b[0:]) + s2
			s2 += binary.BigEndian.Uint32(b[4:]) + s1
			s1 += binary.BigEndian.Uint32(b[8:]) + s2
			s2 += binary.BigEndian.Uint32(b[12:]) + s1
			s1 += binary.BigEndian.Uint32(b[16:]) + s2
			s2 += binary.BigEndian.Uint32(b[20:]) + s1
			s1 += binary.BigEndian.Uint32(b[24:]) + s2
			s2 += binary.BigEndian.Uint32(b[28:]) + s1
			b = b[32:]
		}
		for len(b) >= 8 {
			s1 += binary.BigEndian.Uint32(b[0:]) + s2
			s2 += binary.BigEndian.Uint32(b[4:]) + s1
			b = b[8:]
		}
	} else {
		for len(b) >= 32 {
			s1 += binary.LittleEndian.Uint32(b[0:]) + s2
			s2 += binary.LittleEndian.Uint32(b[4:]) + s1
			s1 += binary.LittleEndian.Uint32(b[8:]) + s2
			s2 += binary.LittleEndian.Uint32(b[12:]) + s1
			s1 += binary.LittleEndian.Uint32(b[16:]) + s2
			s2 += binary.LittleEndian.Uint32(b[20:]) + s1
			s1 += binary.LittleEndian.Uint32(b[24:]) + s2
			s2 += binary.LittleEndian.Uint32(b[28:]) + s1
			b = b[32:]
		}
		for len(b) >= 8 {
			s1 += binary.LittleEndian.Uint32(b[0:]) + s2
			s2 += binary.LittleEndian.Uint32(b[4:]) + s1
			b = b[8:]
		}
	}
	return Checksum{s1, s2}
}
