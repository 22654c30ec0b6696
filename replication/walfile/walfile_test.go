package walfile_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/ozanturksever/go-cluster/replication/walfile"
	"github.com/ozanturksever/go-cluster/replication/walfile/walfiletest"
)

func page(n int, seed uint64) []byte { return walfiletest.Page(n, seed) }

// spec describes one transaction of a hand-built WAL: the pages it
// writes; the last frame gets commit size commit (0 leaves it
// uncommitted).
type spec struct {
	pgnos  []uint32
	commit uint32
}

func hdr(ps uint32, big bool, salt walfile.Salt) walfile.Header {
	m := walfile.MagicLE
	if big {
		m = walfile.MagicBE
	}
	return walfile.Header{Magic: m, Version: walfile.Version, PageSize: ps, CheckpointSeq: 7, Salt: salt}
}

// build encodes the transactions and returns the image, the encoder and
// the offsets where each transaction ends.
func build(h walfile.Header, txns []spec) (*walfile.Encoder, []walfile.Position) {
	e := walfile.NewEncoder(h)
	var ends []walfile.Position
	seed := uint64(h.Salt.S1)
	for _, t := range txns {
		for i, p := range t.pgnos {
			c := uint32(0)
			if i == len(t.pgnos)-1 {
				c = t.commit
			}
			seed++
			e.AppendFrame(p, c, page(int(h.PageSize), seed))
		}
		ends = append(ends, e.Position())
	}
	return e, ends
}

// readAll returns every Txn a Reader from the start of b returns before
// io.EOF.
func readAll(t testing.TB, b []byte) ([]walfile.Txn, walfile.Position) {
	t.Helper()
	_, txns, pos, err := walfiletest.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return txns, pos
}

func verifyTxn(t testing.TB, img []byte, h walfile.Header, txn walfile.Txn) {
	t.Helper()
	if err := walfiletest.VerifyTxn(img, h, txn); err != nil {
		t.Fatal(err)
	}
}

func verifyChain(t testing.TB, img []byte, h walfile.Header, txns []walfile.Txn) {
	t.Helper()
	if _, err := walfiletest.VerifyChain(img, h, h.Start(), txns); err != nil {
		t.Fatal(err)
	}
}

func TestParseHeader(t *testing.T) {
	good := walfile.NewEncoder(hdr(4096, false, walfile.Salt{S1: 1, S2: 2})).Bytes()
	goodBE := walfile.NewEncoder(hdr(4096, true, walfile.Salt{S1: 1, S2: 2})).Bytes()
	big := walfile.NewEncoder(hdr(65536, false, walfile.Salt{S1: 1, S2: 2})).Bytes()
	mut := func(b []byte, f func([]byte)) []byte {
		c := bytes.Clone(b)
		f(c)
		return c
	}
	reseal := func(f func(*walfile.Header)) []byte {
		h := hdr(4096, false, walfile.Salt{S1: 1, S2: 2})
		f(&h)
		h = h.Seal()
		b, _ := h.AppendBinary(nil)
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"little-endian", good, nil},
		{"big-endian", goodBE, nil},
		{"page size 65536", big, nil},
		{"short", good[:31], walfile.ErrBadHeader},
		{"empty", nil, walfile.ErrBadHeader},
		{"bad magic", reseal(func(h *walfile.Header) { h.Magic = 0x377f0684 }), walfile.ErrBadHeader},
		{"bad version", reseal(func(h *walfile.Header) { h.Version = 3007001 }), walfile.ErrBadHeader},
		{"page size 0", reseal(func(h *walfile.Header) { h.PageSize = 0 }), walfile.ErrBadHeader},
		{"page size 1", reseal(func(h *walfile.Header) { h.PageSize = 1 }), walfile.ErrBadHeader},
		{"page size 256", reseal(func(h *walfile.Header) { h.PageSize = 256 }), walfile.ErrBadHeader},
		{"page size 1000", reseal(func(h *walfile.Header) { h.PageSize = 1000 }), walfile.ErrBadHeader},
		{"page size 131072", reseal(func(h *walfile.Header) { h.PageSize = 131072 }), walfile.ErrBadHeader},
		{"bad checksum", mut(good, func(b []byte) { b[27]++ }), walfile.ErrBadChecksum},
		{"salt changed", mut(good, func(b []byte) { b[19]++ }), walfile.ErrBadChecksum},
		{"endianness flipped", mut(good, func(b []byte) { b[3] = 0x83 }), walfile.ErrBadChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := walfile.ParseHeader(tc.b)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err == nil && (h.Salt != walfile.Salt{S1: 1, S2: 2} || h.CheckpointSeq != 7) {
				t.Fatalf("header %+v", h)
			}
		})
	}
}

func TestSum(t *testing.T) {
	naive := func(big bool, prev walfile.Checksum, b []byte) walfile.Checksum {
		s1, s2 := prev.S1, prev.S2
		for i := 0; i < len(b); i += 8 {
			var x0, x1 uint32
			if big {
				x0, x1 = binary.BigEndian.Uint32(b[i:]), binary.BigEndian.Uint32(b[i+4:])
			} else {
				x0, x1 = binary.LittleEndian.Uint32(b[i:]), binary.LittleEndian.Uint32(b[i+4:])
			}
			s1 += x0 + s2
			s2 += x1 + s1
		}
		return walfile.Checksum{S1: s1, S2: s2}
	}
	for _, n := range []int{0, 8, 16, 24, 32, 40, 512, 4096, 65536 + 8} {
		b := page(n, uint64(n))
		for _, big := range []bool{false, true} {
			prev := walfile.Checksum{S1: 0xdeadbeef, S2: 0x12345678}
			if got, want := walfile.Sum(big, prev, b), naive(big, prev, b); got != want {
				t.Fatalf("n=%d big=%v: %v, want %v", n, big, got, want)
			}
		}
	}
	// Known value: the words 1,2 from zero give s1=1, s2=3.
	if got := walfile.Sum(true, walfile.Checksum{}, []byte{0, 0, 0, 1, 0, 0, 0, 2}); got != (walfile.Checksum{S1: 1, S2: 3}) {
		t.Fatalf("big-endian 1,2: %v", got)
	}
	if got := walfile.Sum(false, walfile.Checksum{}, []byte{1, 0, 0, 0, 2, 0, 0, 0}); got != (walfile.Checksum{S1: 1, S2: 3}) {
		t.Fatalf("little-endian 1,2: %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Sum of 7 bytes did not panic")
		}
	}()
	walfile.Sum(false, walfile.Checksum{}, make([]byte, 7))
}

func TestReader(t *testing.T) {
	const ps = 1024
	salt := walfile.Salt{S1: 0x1000, S2: 0xabcdef}
	three := []spec{{[]uint32{1, 2, 3}, 3}, {[]uint32{2, 4, 2}, 4}, {[]uint32{5}, 5}}
	frameOff := func(i int) int64 { return walfile.HeaderSize + int64(i)*(walfile.FrameHeaderSize+ps) }
	for _, tc := range []struct {
		name   string
		big    bool
		txns   []spec
		mutate func(img []byte, h walfile.Header) []byte
		want   int // transactions returned
	}{
		{name: "three txns", txns: three, want: 3},
		{name: "three txns big-endian", big: true, txns: three, want: 3},
		{name: "empty WAL", txns: nil, want: 0},
		{name: "uncommitted tail", txns: append(three[:2:2], spec{[]uint32{6, 7}, 0}), want: 2},
		{name: "uncommitted tail big-endian", big: true, txns: append(three[:2:2], spec{[]uint32{6, 7}, 0}), want: 2},
		{name: "torn last frame", txns: three, mutate: func(img []byte, _ walfile.Header) []byte { return img[:len(img)-100] }, want: 2},
		{name: "torn frame header", txns: three, mutate: func(img []byte, _ walfile.Header) []byte { return img[:frameOff(6)+10] }, want: 2},
		{name: "broken chain mid txn", txns: three, mutate: func(img []byte, _ walfile.Header) []byte {
			img[frameOff(4)+walfile.FrameHeaderSize+77] ^= 1 // data of the 2nd frame of txn 2
			return img
		}, want: 1},
		{name: "broken chain big-endian", big: true, txns: three, mutate: func(img []byte, _ walfile.Header) []byte {
			img[frameOff(3)+walfile.FrameHeaderSize] ^= 0x80
			return img
		}, want: 1},
		{name: "bad stored checksum of commit frame", txns: three, mutate: func(img []byte, _ walfile.Header) []byte {
			img[frameOff(5)+20]++
			return img
		}, want: 1},
		{name: "salt mismatch mid txn", txns: three, mutate: func(img []byte, _ walfile.Header) []byte {
			// The frame checksum does not cover the salt: only the salt
			// check catches this.
			img[frameOff(4)+11]++
			return img
		}, want: 1},
		{name: "page number zero", txns: three, mutate: func(img []byte, _ walfile.Header) []byte {
			// A frame for page 0 with a valid checksum: rebuild txn 3 so.
			e, _ := build(hdr(ps, false, salt), append(three[:2:2], spec{[]uint32{0}, 5}))
			return e.Bytes()
		}, want: 2},
		{name: "commit in the middle of frames", txns: []spec{{[]uint32{1}, 1}, {[]uint32{1}, 1}, {[]uint32{2}, 2}}, want: 3},
		{name: "stale older generation after new one", txns: three, mutate: func(img []byte, h walfile.Header) []byte {
			// The WAL restarted: generation salt+1 wrote one txn over
			// the start of the old image; the old frames after it must
			// not be returned although their own chain is intact.
			nh := h
			nh.Salt.S1++
			nh.Salt.S2 = 0x5555
			e, _ := build(nh, []spec{{[]uint32{1, 9}, 9}})
			copy(img, e.Bytes())
			return img
		}, want: 1},
		{name: "bad header", txns: three, mutate: func(img []byte, _ walfile.Header) []byte { img[20]++; return img }, want: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ends := build(hdr(ps, tc.big, salt), tc.txns)
			img := bytes.Clone(e.Bytes())
			if tc.mutate != nil {
				img = tc.mutate(img, e.Header())
			}
			if tc.want < 0 {
				if _, err := walfile.ParseHeader(img); err == nil {
					t.Fatal("header accepted")
				}
				return
			}
			txns, pos := readAll(t, img)
			if len(txns) != tc.want {
				t.Fatalf("%d txns, want %d", len(txns), tc.want)
			}
			h, _ := walfile.ParseHeader(img)
			verifyChain(t, img, h, txns)
			wantPos := h.Start()
			if tc.want > 0 {
				last := txns[len(txns)-1]
				wantPos = walfile.Position{Salt: h.Salt, Offset: last.End, Checksum: last.Post}
				// The txns returned are a prefix of those built (but for
				// the restart case, whose image is another generation).
				if tc.name != "stale older generation after new one" && (last.End != ends[tc.want-1].Offset || last.Post != ends[tc.want-1].Checksum) {
					t.Fatalf("last txn ends at %d, want %d", last.End, ends[tc.want-1].Offset)
				}
			}
			if pos != wantPos {
				t.Fatalf("position %+v, want %+v", pos, wantPos)
			}
			// Pages in WAL order, repeats kept.
			if tc.mutate == nil && len(tc.txns) > 0 {
				for i, txn := range txns {
					if len(txn.Frames) != len(tc.txns[i].pgnos) {
						t.Fatalf("txn %d has %d frames", i, len(txn.Frames))
					}
					for j, f := range txn.Frames {
						if f.Pgno != tc.txns[i].pgnos[j] {
							t.Fatalf("txn %d frame %d pgno %d", i, j, f.Pgno)
						}
					}
				}
			}
		})
	}
}

func TestReaderFromPosition(t *testing.T) {
	const ps = 512
	h := hdr(ps, false, walfile.Salt{S1: 3, S2: 4})
	e, ends := build(h, []spec{{[]uint32{1}, 1}, {[]uint32{2, 1}, 2}, {[]uint32{3}, 3}})
	img := e.Bytes()
	h = e.Header()
	ra := bytes.NewReader(img)

	r, err := walfile.NewReader(ra, int64(len(img)), h, ends[0])
	if err != nil {
		t.Fatal(err)
	}
	txn, err := r.Next()
	if err != nil || txn.Start != ends[0].Offset || txn.End != ends[1].Offset {
		t.Fatalf("from end of txn 1: %v %d..%d", err, txn.Start, txn.End)
	}

	// A position with the right offset but another checksum is not
	// continued by anything.
	bad := ends[0]
	bad.Checksum.S2++
	r, err = walfile.NewReader(ra, int64(len(img)), h, bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("wrong checksum: %v", err)
	}

	for name, p := range map[string]walfile.Position{
		"other salt":      {Salt: walfile.Salt{S1: 9}, Offset: ends[0].Offset, Checksum: ends[0].Checksum},
		"off boundary":    {Salt: h.Salt, Offset: ends[0].Offset + 8, Checksum: ends[0].Checksum},
		"before frames":   {Salt: h.Salt, Offset: 0},
		"start, wrong ck": {Salt: h.Salt, Offset: walfile.HeaderSize},
	} {
		if _, err := walfile.NewReader(ra, int64(len(img)), h, p); !errors.Is(err, walfile.ErrBadPosition) {
			t.Errorf("%s: %v", name, err)
		}
		if walfile.Continues(h, p) {
			t.Errorf("%s: Continues", name)
		}
	}
	for i, p := range append([]walfile.Position{h.Start()}, ends...) {
		if !walfile.Continues(h, p) {
			t.Errorf("end %d: !Continues", i)
		}
	}
	nh := h
	nh.Salt.S1++
	if walfile.Continues(nh.Seal(), ends[1]) {
		t.Error("Continues across a restart")
	}
}

// TestReaderGrowing feeds a Reader a file that is written while it reads,
// byte range by byte range, as a live WAL is.
func TestReaderGrowing(t *testing.T) {
	const ps = 4096
	h := hdr(ps, false, walfile.Salt{S1: 11, S2: 12})
	txns := []spec{{[]uint32{1, 2}, 2}, {[]uint32{3, 4, 5, 3}, 5}, {[]uint32{6}, 6}}
	e, ends := build(h, txns)
	full := e.Bytes()
	h = e.Header()
	buf := make([]byte, len(full))
	var size int64
	r, err := walfile.NewReader(bytes.NewReader(buf), 0, h, h.Start())
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for size < int64(len(full)) {
		step := min(int64(1000), int64(len(full))-size)
		copy(buf[size:], full[size:size+step])
		size += step
		r.SetSize(size)
		for {
			txn, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if txn.End > size || txn.End != ends[got].Offset {
				t.Fatalf("txn %d ends at %d, size %d, want %d", got, txn.End, size, ends[got].Offset)
			}
			got++
		}
		// Every txn whose commit frame is complete has been returned.
		want := 0
		for _, end := range ends {
			if end.Offset <= size {
				want++
			}
		}
		if got != want {
			t.Fatalf("size %d: %d txns, want %d (pending %d)", size, got, want, r.Pending())
		}
	}
}

// TestReaderRewrittenTail: a transaction spills frames and rolls back;
// the next transaction overwrites them with fewer frames and commits
// without the file growing. The Reader must notice the commit although it
// saw the old tail.
func TestReaderRewrittenTail(t *testing.T) {
	const ps = 512
	h := hdr(ps, false, walfile.Salt{S1: 5, S2: 6})
	rolled, _ := build(h, []spec{{[]uint32{1}, 1}, {[]uint32{2, 3, 4, 5, 6}, 0}})
	h = rolled.Header()
	img := bytes.Clone(rolled.Bytes())
	r, err := walfile.NewReader(bytes.NewReader(img), int64(len(img)), h, h.Start())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) || r.Pending() != 5*(ps+walfile.FrameHeaderSize) {
		t.Fatalf("tail: %v, pending %d", err, r.Pending())
	}
	// Overwrite: txn 2 is now pages 7, 8 with commit; bytes after stay.
	e2 := walfile.NewEncoder(h)
	e2.AppendFrame(1, 1, page(ps, uint64(h.Salt.S1)+1))
	e2.AppendFrame(7, 0, page(ps, 99))
	e2.AppendFrame(8, 8, page(ps, 100))
	if !bytes.Equal(e2.Bytes()[:len(e2.Bytes())-2*(ps+walfile.FrameHeaderSize)], img[:len(e2.Bytes())-2*(ps+walfile.FrameHeaderSize)]) {
		t.Fatal("test setup: first txn differs")
	}
	copy(img, e2.Bytes())
	txn, err := r.Next()
	if err != nil || len(txn.Frames) != 2 || txn.Frames[1].Pgno != 8 {
		t.Fatalf("after rewrite: %v %+v", err, txn)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("stale frames after the rewrite returned: %v", err)
	}
	verifyTxn(t, img, h, txn)
}

func TestReaderLargeTxn(t *testing.T) {
	const ps = 4096
	h := hdr(ps, false, walfile.Salt{S1: 21, S2: 22})
	pg := make([]uint32, 3000) // 12 MB in one transaction
	for i := range pg {
		pg[i] = uint32(i + 1)
	}
	e, _ := build(h, []spec{{[]uint32{1}, 1}, {pg, 3000}, {[]uint32{7}, 3000}})
	img := e.Bytes()
	txns, _ := readAll(t, img)
	if len(txns) != 3 || len(txns[1].Frames) != 3000 {
		t.Fatalf("%d txns", len(txns))
	}
	verifyChain(t, img, e.Header(), txns)

	// Growing in big steps, reading between them: the pending tail is
	// resumed, then read again whole when its commit comes.
	buf := make([]byte, len(img))
	r, _ := walfile.NewReader(bytes.NewReader(buf), 0, e.Header(), e.Header().Start())
	var got []walfile.Txn
	for size := int64(0); size < int64(len(img)); {
		size = min(size+300_001, int64(len(img)))
		copy(buf, img[:size])
		r.SetSize(size)
		for {
			txn, err := r.Next()
			if err != nil {
				break
			}
			got = append(got, txn)
		}
	}
	if len(got) != 3 {
		t.Fatalf("growing: %d txns", len(got))
	}
	verifyChain(t, img, e.Header(), got)
}

type errReaderAt struct{}

func (errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }

func TestReaderReadError(t *testing.T) {
	h := hdr(512, false, walfile.Salt{S1: 1}).Seal()
	r, err := walfile.NewReader(errReaderAt{}, 10000, h, h.Start())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("read error: %v", err)
	}
	if r.Position() != h.Start() {
		t.Fatal("position moved")
	}
}

func FuzzReader(f *testing.F) {
	for i, big := range []bool{false, true} {
		h := hdr(512, big, walfile.Salt{S1: uint32(i), S2: 77})
		e, _ := build(h, []spec{{[]uint32{1, 2}, 2}, {[]uint32{3}, 3}, {[]uint32{2, 4}, 0}})
		f.Add(bytes.Clone(e.Bytes()))
		img := bytes.Clone(e.Bytes())
		img[len(img)/2] ^= 0xff
		f.Add(img)
	}
	f.Add(walfile.NewEncoder(hdr(512, false, walfile.Salt{})).Bytes())
	f.Add([]byte("not a wal"))
	f.Fuzz(func(t *testing.T, img []byte) {
		if _, err := walfile.ParseHeader(img); err != nil {
			return
		}
		txns, _ := readAll(t, img)
		h, _ := walfile.ParseHeader(img)
		verifyChain(t, img, h, txns)
	})
}

func BenchmarkReader(b *testing.B) {
	const ps = 4096
	h := hdr(ps, false, walfile.Salt{S1: 1, S2: 2})
	var txns []spec
	n := 0
	for n < 16000 { // ~64 MB
		k := 1 + n%20
		pg := make([]uint32, k)
		for i := range pg {
			pg[i] = uint32(1 + (n+i)%5000)
		}
		txns = append(txns, spec{pg, 5000})
		n += k
	}
	e, _ := build(h, txns)
	img := e.Bytes()
	b.SetBytes(int64(len(img)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := walfile.NewReader(bytes.NewReader(img), int64(len(img)), e.Header(), e.Header().Start())
		if err != nil {
			b.Fatal(err)
		}
		c := 0
		for {
			if _, err := r.Next(); err != nil {
				break
			}
			c++
		}
		if c != len(txns) {
			b.Fatalf("%d txns", c)
		}
	}
}

func BenchmarkSum(b *testing.B) {
	p := page(4096, 1)
	b.SetBytes(int64(len(p)))
	var ck walfile.Checksum
	for b.Loop() {
		ck = walfile.Sum(false, ck, p)
	}
}

// TestReaderRewrittenSameFirstFrame: the overwriting transaction begins
// with the very frame the rolled-back one began with, and commits inside
// the old tail without the file growing: the Reader cannot see it until
// Rescan.
func TestReaderRewrittenSameFirstFrame(t *testing.T) {
	const ps = 512
	h := hdr(ps, false, walfile.Salt{S1: 8, S2: 9}).Seal()
	p1, same := page(ps, 1), page(ps, 2)
	old := walfile.NewEncoder(h)
	old.AppendFrame(1, 1, p1)
	old.AppendFrame(2, 0, same)
	for i := range 4 {
		old.AppendFrame(uint32(3+i), 0, page(ps, uint64(10+i)))
	}
	img := bytes.Clone(old.Bytes())
	r, err := walfile.NewReader(bytes.NewReader(img), int64(len(img)), h, h.Start())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) || r.Pending() == 0 {
		t.Fatalf("tail: %v, pending %d", err, r.Pending())
	}
	nw := walfile.NewEncoder(h)
	nw.AppendFrame(1, 1, p1)
	nw.AppendFrame(2, 0, same)
	nw.AppendFrame(7, 7, page(ps, 99))
	copy(img, nw.Bytes())
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("before Rescan: %v", err)
	}
	r.Rescan()
	txn, err := r.Next()
	if err != nil || len(txn.Frames) != 2 || txn.CommitSize != 7 {
		t.Fatalf("after Rescan: %v, %d frames", err, len(txn.Frames))
	}
}
