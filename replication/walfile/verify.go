package walfile

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorruptTxn: a transaction's frames do not make a valid committed
// transaction, or do not hash to its Post checksum.
var ErrCorruptTxn = errors.New("walfile: corrupt transaction")

// Verify checks that t is a whole committed transaction whose frames
// continue the chain from t.Pre to t.Post: a transaction that was carried
// somewhere (a log message) and back is valid only if every page byte and
// every frame header survived. The chain covers each frame's page number
// and commit size and its data; the salt is not part of it and is checked
// by whoever knows the generation.
func (t Txn) Verify() error {
	if len(t.Frames) == 0 {
		return fmt.Errorf("%w: no frames", ErrCorruptTxn)
	}
	ck := t.Pre
	var fh [8]byte
	for i, f := range t.Frames {
		last := i == len(t.Frames)-1
		switch {
		case f.Pgno == 0:
			return fmt.Errorf("%w: frame %d has page number 0", ErrCorruptTxn, i)
		case len(f.Data) != int(t.PageSize):
			return fmt.Errorf("%w: frame %d holds %d bytes, page size %d", ErrCorruptTxn, i, len(f.Data), t.PageSize)
		case last && (f.CommitSize == 0 || f.CommitSize != t.CommitSize):
			return fmt.Errorf("%w: commit frame says %d pages, transaction %d", ErrCorruptTxn, f.CommitSize, t.CommitSize)
		case !last && f.CommitSize != 0:
			return fmt.Errorf("%w: frame %d commits before the end", ErrCorruptTxn, i)
		}
		binary.BigEndian.PutUint32(fh[0:], f.Pgno)
		binary.BigEndian.PutUint32(fh[4:], f.CommitSize)
		ck = Sum(t.BigEndian, ck, fh[:])
		ck = Sum(t.BigEndian, ck, f.Data)
	}
	if ck != t.Post {
		return fmt.Errorf("%w: frames hash to %08x%08x, want %08x%08x", ErrCorruptTxn, ck.S1, ck.S2, t.Post.S1, t.Post.S2)
	}
	if want := int64(len(t.Frames)) * (FrameHeaderSize + int64(t.PageSize)); t.End-t.Start != want {
		return fmt.Errorf("%w: spans %d bytes, %d frames need %d", ErrCorruptTxn, t.End-t.Start, len(t.Frames), want)
	}
	return nil
}
