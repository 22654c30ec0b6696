// Package walfiletest has helpers for tests of WAL readers and of what
// consumes their transactions: deterministic pages and an independent check
// that transactions are exactly what a WAL image holds.
package walfiletest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/ozanturksever/go-cluster/replication/walfile"
)

// Page returns n deterministic pseudo-random bytes for seed.
func Page(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, (n+7)/8*8)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n]
}

// ReadAll parses the header of img and returns every transaction a Reader
// from the start of the generation returns before io.EOF, with the
// Reader's final position.
func ReadAll(img []byte) (walfile.Header, []walfile.Txn, walfile.Position, error) {
	h, err := walfile.ParseHeader(img)
	if err != nil {
		return h, nil, walfile.Position{}, err
	}
	r, err := walfile.NewReader(bytes.NewReader(img), int64(len(img)), h, h.Start())
	if err != nil {
		return h, nil, walfile.Position{}, err
	}
	var out []walfile.Txn
	for {
		txn, err := r.Next()
		if errors.Is(err, io.EOF) {
			return h, out, r.Position(), nil
		}
		if err != nil {
			return h, out, r.Position(), err
		}
		out = append(out, txn)
	}
}

// VerifyTxn checks txn against the raw WAL image img of the generation h,
// without a Reader: the frames at [Start, End) carry the header's salt, a
// non-zero page number, the frame data and commit sizes of txn (only the
// last frame a commit frame), and their checksums continue the chain from
// txn.Pre to txn.Post.
func VerifyTxn(img []byte, h walfile.Header, txn walfile.Txn) error {
	fs := h.FrameSize()
	if txn.Salt != h.Salt || txn.PageSize != h.PageSize {
		return fmt.Errorf("txn salt/page size %v/%d, header %v/%d", txn.Salt, txn.PageSize, h.Salt, h.PageSize)
	}
	if len(txn.Frames) == 0 {
		return errors.New("txn without frames")
	}
	if txn.Start < walfile.HeaderSize || (txn.Start-walfile.HeaderSize)%fs != 0 ||
		txn.End-txn.Start != int64(len(txn.Frames))*fs || txn.End > int64(len(img)) {
		return fmt.Errorf("txn extent [%d,%d) with %d frames in %d bytes", txn.Start, txn.End, len(txn.Frames), len(img))
	}
	ck := txn.Pre
	be := binary.BigEndian
	for i, f := range txn.Frames {
		fb := img[txn.Start+int64(i)*fs : txn.Start+int64(i+1)*fs]
		if be.Uint32(fb[0:]) != f.Pgno || f.Pgno == 0 || be.Uint32(fb[4:]) != f.CommitSize {
			return fmt.Errorf("frame %d: header does not match", i)
		}
		if (f.CommitSize != 0) != (i == len(txn.Frames)-1) {
			return fmt.Errorf("frame %d of %d has commit size %d", i, len(txn.Frames), f.CommitSize)
		}
		if (walfile.Salt{S1: be.Uint32(fb[8:]), S2: be.Uint32(fb[12:])}) != h.Salt {
			return fmt.Errorf("frame %d: salt is not the header's", i)
		}
		ck = walfile.Sum(h.BigEndian(), ck, fb[:8])
		ck = walfile.Sum(h.BigEndian(), ck, fb[walfile.FrameHeaderSize:])
		if ck != (walfile.Checksum{S1: be.Uint32(fb[16:]), S2: be.Uint32(fb[20:])}) {
			return fmt.Errorf("frame %d: checksum does not continue the chain", i)
		}
		if !bytes.Equal(f.Data, fb[walfile.FrameHeaderSize:]) {
			return fmt.Errorf("frame %d: data differs from the image", i)
		}
	}
	if ck != txn.Post {
		return errors.New("Post is not the chain's end")
	}
	if txn.CommitSize != txn.Frames[len(txn.Frames)-1].CommitSize {
		return errors.New("CommitSize is not the commit frame's")
	}
	return nil
}

// VerifyChain checks that txns follow one another from from on, each one
// verified by VerifyTxn, and returns the position after the last.
func VerifyChain(img []byte, h walfile.Header, from walfile.Position, txns []walfile.Txn) (walfile.Position, error) {
	prev := from
	for i, txn := range txns {
		if txn.Start != prev.Offset || txn.Pre != prev.Checksum || txn.Salt != prev.Salt {
			return prev, fmt.Errorf("txn %d starts at %d/%v, the previous ends at %d/%v", i, txn.Start, txn.Pre, prev.Offset, prev.Checksum)
		}
		if err := VerifyTxn(img, h, txn); err != nil {
			return prev, fmt.Errorf("txn %d: %w", i, err)
		}
		prev = walfile.Position{Salt: h.Salt, Offset: txn.End, Checksum: txn.Post}
	}
	return prev, nil
}
