// Package walfile reads SQLite write-ahead log files: the header, frames,
// the salts and the cumulative checksum chain, and groups frames into the
// committed transactions a replica may apply. It is pure: it reads from an
// io.ReaderAt and decides; opening files, locking and shipping are the
// caller's.
package walfile

// Sizes fixed by the WAL format (https://www.sqlite.org/fileformat.html#walformat).
const (
	HeaderSize      = 32
	FrameHeaderSize = 24
)

// Checksum is the pair of 32-bit running sums SQLite keeps over the WAL
// header and every frame; each frame's checksum covers every byte before
// it since the header, so a frame is valid only as part of its chain.
type Checksum struct {
	S1, S2 uint32
}

// Salt identifies one generation of the WAL: SQLite changes it every time
// the WAL restarts from the beginning, and a frame whose salt differs from
// the header's is left over from an earlier generation.
type Salt struct {
	S1, S2 uint32
}

// Frame is one page image in the WAL.
type Frame struct {
	Pgno uint32 // page number, from 1
	// CommitSize is the database size in pages after the transaction this
	// frame ends; 0 for a frame that does not end a transaction.
	CommitSize uint32
	Data       []byte // PageSize bytes
}

// Txn is one committed transaction: the frames from the end of the
// previous commit up to and including its commit frame.
type Txn struct {
	Salt       Salt
	PageSize   uint32
	Frames     []Frame
	CommitSize uint32   // database size in pages after the commit
	Pre        Checksum // the chain's checksum before the first frame
	Post       Checksum // the chain's checksum after the commit frame
	Start, End int64    // byte offsets in the WAL file: [Start, End)
	// BigEndian is the byte order of the WAL's checksums (its header's
	// magic), which Verify needs to recompute the chain.
	BigEndian bool
}

// Position is a place in a WAL generation, between transactions: the
// offset of the next frame and the chain's checksum up to it.
type Position struct {
	Salt     Salt
	Offset   int64
	Checksum Checksum
}
