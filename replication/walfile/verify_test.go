package walfile_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ozanturksever/go-cluster/replication/walfile"
)

// cloneTxn copies t deeply, so that a case can change it.
func cloneTxn(t walfile.Txn) walfile.Txn {
	c := t
	c.Frames = make([]walfile.Frame, len(t.Frames))
	for i, f := range t.Frames {
		c.Frames[i] = walfile.Frame{Pgno: f.Pgno, CommitSize: f.CommitSize, Data: bytes.Clone(f.Data)}
	}
	return c
}

func TestVerify(t *testing.T) {
	for _, big := range []bool{false, true} {
		e, _ := build(hdr(4096, big, walfile.Salt{S1: 1, S2: 2}), []spec{{[]uint32{1, 2}, 2}, {[]uint32{3, 1, 4}, 4}})
		txns, _ := readAll(t, e.Bytes())
		if len(txns) != 2 {
			t.Fatalf("read %d transactions", len(txns))
		}
		for _, tc := range []struct {
			name string
			mut  func(*walfile.Txn)
			ok   bool
		}{
			{"valid", func(*walfile.Txn) {}, true},
			{"data byte flipped", func(x *walfile.Txn) { x.Frames[1].Data[4000] ^= 0x10 }, false},
			{"last data byte flipped", func(x *walfile.Txn) { x.Frames[2].Data[4095] ^= 1 }, false},
			{"pgno changed", func(x *walfile.Txn) { x.Frames[0].Pgno = 9 }, false},
			{"pgno 0", func(x *walfile.Txn) { x.Frames[0].Pgno = 0 }, false},
			{"commit frame in the middle", func(x *walfile.Txn) { x.Frames[1].CommitSize = 4 }, false},
			{"no commit frame", func(x *walfile.Txn) { x.Frames[2].CommitSize = 0 }, false},
			{"commit size differs", func(x *walfile.Txn) { x.CommitSize = 5 }, false},
			{"frames swapped", func(x *walfile.Txn) { x.Frames[0], x.Frames[1] = x.Frames[1], x.Frames[0] }, false},
			{"frame missing", func(x *walfile.Txn) { x.Frames = x.Frames[1:] }, false},
			{"no frames", func(x *walfile.Txn) { x.Frames = nil }, false},
			{"short page", func(x *walfile.Txn) { x.Frames[1].Data = x.Frames[1].Data[:4095] }, false},
			{"wrong Post", func(x *walfile.Txn) { x.Post.S1 ^= 1 }, false},
			{"wrong Pre", func(x *walfile.Txn) { x.Pre.S2++ }, false},
			{"wrong End", func(x *walfile.Txn) { x.End += 4096 + 24 }, false},
			{"wrong Start", func(x *walfile.Txn) { x.Start-- }, false},
			{"other byte order", func(x *walfile.Txn) { x.BigEndian = !x.BigEndian }, false},
		} {
			name := tc.name
			if big {
				name += " (big-endian)"
			}
			t.Run(name, func(t *testing.T) {
				for i, txn := range txns {
					if i == 0 && tc.name != "valid" {
						continue // the cases index frames of the second
					}
					c := cloneTxn(txn)
					tc.mut(&c)
					err := c.Verify()
					if tc.ok && err != nil {
						t.Fatalf("txn %d: %v", i, err)
					}
					if !tc.ok && !errors.Is(err, walfile.ErrCorruptTxn) {
						t.Fatalf("txn %d: err %v, want ErrCorruptTxn", i, err)
					}
				}
			})
		}
	}
}

// TestVerifyChainValid: frames whose chain does hash to Post but that are
// no single valid transaction are refused too.
func TestVerifyChainValid(t *testing.T) {
	// Two committed transactions presented as one: the chain runs from the
	// first's Pre to the second's Post, but a commit frame is in the middle.
	e, _ := build(hdr(4096, false, walfile.Salt{S1: 1, S2: 2}), []spec{{[]uint32{1, 2}, 2}, {[]uint32{3}, 3}})
	txns, _ := readAll(t, e.Bytes())
	if len(txns) != 2 {
		t.Fatalf("read %d transactions", len(txns))
	}
	joined := txns[0]
	joined.Frames = append(append([]walfile.Frame(nil), txns[0].Frames...), txns[1].Frames...)
	joined.Post, joined.End, joined.CommitSize = txns[1].Post, txns[1].End, txns[1].CommitSize
	if err := joined.Verify(); !errors.Is(err, walfile.ErrCorruptTxn) {
		t.Fatalf("two transactions as one: %v", err)
	}

	// No frames, though Pre, Post, Start and End agree with that.
	empty := walfile.Txn{Salt: txns[0].Salt, PageSize: 4096, Pre: txns[0].Pre, Post: txns[0].Pre, Start: txns[0].Start, End: txns[0].Start}
	if err := empty.Verify(); !errors.Is(err, walfile.ErrCorruptTxn) {
		t.Fatalf("no frames: %v", err)
	}

	// A frame of page 0 whose checksums are right.
	h := hdr(4096, false, walfile.Salt{S1: 1, S2: 2})
	enc := walfile.NewEncoder(h)
	frames := []walfile.Frame{{Pgno: 0, Data: page(4096, 1)}, {Pgno: 1, CommitSize: 1, Data: page(4096, 2)}}
	for _, f := range frames {
		enc.AppendFrame(f.Pgno, f.CommitSize, f.Data)
	}
	zero := walfile.Txn{
		Salt: h.Salt, PageSize: 4096, Frames: frames, CommitSize: 1,
		Pre: enc.Header().Checksum, Post: enc.Position().Checksum,
		Start: walfile.HeaderSize, End: enc.Position().Offset,
	}
	if err := zero.Verify(); !errors.Is(err, walfile.ErrCorruptTxn) {
		t.Fatalf("page 0: %v", err)
	}
	// The same with page 1 passes (the construction is sound).
	enc = walfile.NewEncoder(h)
	frames[0].Pgno = 1
	for _, f := range frames {
		enc.AppendFrame(f.Pgno, f.CommitSize, f.Data)
	}
	zero.Frames, zero.Post = frames, enc.Position().Checksum
	if err := zero.Verify(); err != nil {
		t.Fatalf("hand-built valid transaction: %v", err)
	}
}
