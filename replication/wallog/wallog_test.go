package wallog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/internal/natstest"
	"github.com/ozanturksever/go-cluster/replication/walfile"
	"github.com/ozanturksever/go-cluster/replication/walfile/walfiletest"
	"github.com/ozanturksever/go-cluster/replication/wallog"
)

const pageSize = 4096

// startJS starts an embedded JetStream server and returns a client.
func startJS(t *testing.T) (context.Context, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx, natstest.JetStream(t)
}

func openLog(t *testing.T, ctx context.Context, js jetstream.JetStream, name string, maxPart int) *wallog.Log {
	t.Helper()
	l, err := wallog.Open(ctx, js, wallog.Config{Stream: name, Subject: "wal." + name, MaxPart: maxPart})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// makeTxns encodes one WAL generation holding a transaction per element
// of sizes (that many frames each) and parses it back, so that every Txn
// is exactly what a walfile.Reader returns: real Pre/Post/Start/End.
func makeTxns(t testing.TB, sizes ...int) []walfile.Txn {
	t.Helper()
	enc := walfile.NewEncoder(walfile.Header{PageSize: pageSize, Salt: walfile.Salt{S1: 1, S2: 2}})
	seed, maxPg := uint64(0), uint32(0)
	for _, n := range sizes {
		for i := range n {
			pgno := uint32(i%500 + 1)
			maxPg = max(maxPg, pgno)
			commit := uint32(0)
			if i == n-1 {
				commit = maxPg
			}
			seed++
			enc.AppendFrame(pgno, commit, walfiletest.Page(pageSize, seed))
		}
	}
	img := enc.Bytes()
	h, err := walfile.ParseHeader(img)
	if err != nil {
		t.Fatal(err)
	}
	r, err := walfile.NewReader(bytes.NewReader(img), int64(len(img)), h, h.Start())
	if err != nil {
		t.Fatal(err)
	}
	var out []walfile.Txn
	for {
		txn, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, txn)
	}
	if len(out) != len(sizes) {
		t.Fatalf("parsed %d transactions, built %d", len(out), len(sizes))
	}
	for i, txn := range out {
		if len(txn.Frames) != sizes[i] {
			t.Fatalf("txn %d has %d frames, built %d", i, len(txn.Frames), sizes[i])
		}
	}
	return out
}

func next(t *testing.T, ctx context.Context, r *wallog.Reader) wallog.Entry {
	t.Helper()
	e, err := r.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return e
}

// nextBad expects a bad entry matching want.
func nextBad(t *testing.T, ctx context.Context, r *wallog.Reader, want error) *wallog.BadEntryError {
	t.Helper()
	e, err := r.Next(ctx)
	var bad *wallog.BadEntryError
	if !errors.As(err, &bad) || !errors.Is(err, want) || !wallog.IsBad(err) {
		t.Fatalf("Next: entry %+v, err %v; want a *BadEntryError matching %v", e.Kind, err, want)
	}
	other := wallog.ErrCorrupt
	if want == wallog.ErrCorrupt {
		other = wallog.ErrTruncated
	}
	if errors.Is(err, other) {
		t.Fatalf("Next: %v matches %v too", err, other)
	}
	return bad
}

// sameEntry compares an entry read with the one the Appender returned.
func sameEntry(t *testing.T, got, want wallog.Entry) {
	t.Helper()
	if got.Kind != want.Kind || got.Epoch != want.Epoch || got.Seq != want.Seq || got.Node != want.Node ||
		got.Snapshot != want.Snapshot || got.Bytes != want.Bytes ||
		got.FirstStreamSeq != want.FirstStreamSeq || got.StreamSeq != want.StreamSeq || !got.Time.Equal(want.Time) {
		t.Fatalf("entry read:\n%s\nwritten:\n%s", describe(got), describe(want))
	}
	if want.Kind == wallog.KindTxn {
		sameTxn(t, got.Txn, want.Txn)
	} else if len(got.Txn.Frames) != 0 {
		t.Fatalf("%s entry with %d frames", got.Kind, len(got.Txn.Frames))
	}
}

func sameTxn(t *testing.T, got, want walfile.Txn) {
	t.Helper()
	if len(got.Frames) != len(want.Frames) {
		t.Fatalf("txn read has %d frames, written %d", len(got.Frames), len(want.Frames))
	}
	for i := range want.Frames {
		g, w := got.Frames[i], want.Frames[i]
		if g.Pgno != w.Pgno || g.CommitSize != w.CommitSize || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("frame %d differs: read pgno %d commit %d, written pgno %d commit %d (data equal %v)",
				i, g.Pgno, g.CommitSize, w.Pgno, w.CommitSize, bytes.Equal(g.Data, w.Data))
		}
	}
	if !reflect.DeepEqual(got, want) {
		g, w := got, want
		g.Frames, w.Frames = nil, nil
		t.Fatalf("txn read %+v, written %+v", g, w)
	}
}

func describe(e wallog.Entry) string {
	return fmt.Sprintf("kind %s epoch %d seq %d node %q snap %q bytes %d stream %d..%d time %v frames %d",
		e.Kind, e.Epoch, e.Seq, e.Node, e.Snapshot, e.Bytes, e.FirstStreamSeq, e.StreamSeq, e.Time, len(e.Txn.Frames))
}

func tail(t *testing.T, ctx context.Context, l *wallog.Log) wallog.Tail {
	t.Helper()
	tl, err := l.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func read(t *testing.T, ctx context.Context, l *wallog.Log, from uint64) *wallog.Reader {
	t.Helper()
	r, err := l.Read(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func appendTxn(t *testing.T, ctx context.Context, a *wallog.Appender, txn walfile.Txn) wallog.Entry {
	t.Helper()
	e, err := a.AppendTxn(ctx, wallog.Entry{Txn: txn})
	if err != nil {
		t.Fatalf("AppendTxn: %v", err)
	}
	return e
}

// TestRoundTrip: what an Appender writes (an epoch entry, transactions of
// which one is split into many parts, a snapshot entry) reads back
// exactly, with consistent sequences and byte counts.
func TestRoundTrip(t *testing.T) {
	ctx, js := startJS(t)
	const maxPart = 64 << 10
	l := openLog(t, ctx, js, "rt", maxPart)
	if l.Stream() != "rt" {
		t.Fatalf("Stream() = %q", l.Stream())
	}
	txns := makeTxns(t, 3, 300, 1, 7)

	a, epoch, err := l.Fence(ctx, 1, "node-a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if epoch.Kind != wallog.KindEpoch || epoch.Epoch != 1 || epoch.Seq != 0 || epoch.Node != "node-a" ||
		epoch.FirstStreamSeq != 1 || epoch.StreamSeq != 1 || a.Epoch() != 1 {
		t.Fatalf("epoch entry %s", describe(epoch))
	}
	written := []wallog.Entry{epoch}
	var bytesSoFar uint64
	for i, txn := range txns {
		e := appendTxn(t, ctx, a, txn)
		bytesSoFar += uint64(txn.End - txn.Start)
		prev := written[len(written)-1]
		if e.Kind != wallog.KindTxn || e.Seq != uint64(i+1) || e.Epoch != 1 || e.Bytes != bytesSoFar ||
			e.FirstStreamSeq != prev.StreamSeq+1 || e.StreamSeq < e.FirstStreamSeq {
			t.Fatalf("txn %d appended as %s", i, describe(e))
		}
		body := len(txn.Frames) * (8 + pageSize)
		if parts := e.StreamSeq - e.FirstStreamSeq + 1; parts != uint64((body+maxPart-1)/maxPart) {
			t.Fatalf("txn %d (%d body bytes) in %d parts", i, body, parts)
		}
		if p := a.Position(); p != (wallog.Position{StreamSeq: e.StreamSeq, Seq: e.Seq, Bytes: e.Bytes}) {
			t.Fatalf("Position %+v after %s", p, describe(e))
		}
		written = append(written, e)
	}
	if big := written[2]; big.StreamSeq-big.FirstStreamSeq+1 < 10 {
		t.Fatalf("the 300-page transaction was not split: %s", describe(big))
	}
	snap, err := a.AppendSnapshot(ctx, "snap-1", a.Position().Seq)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Kind != wallog.KindSnapshot || snap.Seq != uint64(len(txns)) || snap.Bytes != bytesSoFar ||
		snap.StreamSeq != written[len(written)-1].StreamSeq+1 || snap.Snapshot != "snap-1" {
		t.Fatalf("snapshot entry %s", describe(snap))
	}
	written = append(written, snap)
	if tl := tail(t, ctx, l); tl.FirstStreamSeq != 1 || tl.LastStreamSeq != snap.StreamSeq || tl.Messages != snap.StreamSeq {
		t.Fatalf("Tail %+v, last entry %s", tl, describe(snap))
	}

	r := read(t, ctx, l, 1)
	for i, w := range written {
		got := next(t, ctx, r)
		sameEntry(t, got, w)
		if last := i == len(written)-1; (r.Pending() == 0) != last {
			t.Fatalf("entry %d of %d: Pending %d", i+1, len(written), r.Pending())
		}
	}

	// At the end, Next waits for the next entry; it returns one appended
	// later, and the context's error when none comes.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = r.Next(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next at the end: %v", err)
	}
	more := makeTxns(t, 3, 300, 1, 7, 2)[4]
	e := appendTxn(t, ctx, a, more)
	if e.Seq != uint64(len(txns)+1) || e.Bytes != bytesSoFar+uint64(more.End-more.Start) {
		t.Fatalf("txn after the snapshot: %s", describe(e))
	}
	sameEntry(t, next(t, ctx, r), e)

	// A Reader from the middle starts with the entry there.
	r2 := read(t, ctx, l, written[3].FirstStreamSeq)
	sameEntry(t, next(t, ctx, r2), written[3])

	// Default MaxPart: the server's max payload less room for headers.
	def := openLog(t, ctx, js, "rtdef", 0)
	a2, _, err := def.Fence(ctx, 1, "node-a", 0)
	if err != nil {
		t.Fatal(err)
	}
	huge := makeTxns(t, 600)[0] // 2.4 MiB
	he := appendTxn(t, ctx, a2, huge)
	maxPayload := int(js.Conn().MaxPayload())
	if parts := int(he.StreamSeq - he.FirstStreamSeq + 1); parts < (len(huge.Frames)*(8+pageSize)+maxPayload-1)/maxPayload {
		t.Fatalf("%d parts for %d body bytes, max payload %d", parts, len(huge.Frames)*(8+pageSize), maxPayload)
	}
	r3 := read(t, ctx, def, 2)
	sameEntry(t, next(t, ctx, r3), he)
}

// TestFencing: once a newer leader's epoch entry is in, the old leader
// cannot append a single message; fencing from a stale position fails.
func TestFencing(t *testing.T) {
	ctx, js := startJS(t)
	l := openLog(t, ctx, js, "fence", 64<<10)
	txns := makeTxns(t, 2, 3, 40, 1, 2)

	a, _, err := l.Fence(ctx, 1, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	appendTxn(t, ctx, a, txns[0])
	stale := a.Position()
	appendTxn(t, ctx, a, txns[1])
	at := a.Position()

	// B read the log only up to stale: the log grew since.
	if _, _, err := l.Fence(ctx, 2, "b", stale.StreamSeq); !errors.Is(err, wallog.ErrFenced) {
		t.Fatalf("Fence at a stale position: %v", err)
	}
	// A fence expecting a longer log than there is fails too.
	ahead := at
	ahead.StreamSeq++
	if _, _, err := l.Fence(ctx, 2, "b", ahead.StreamSeq); !errors.Is(err, wallog.ErrFenced) {
		t.Fatalf("Fence past the end: %v", err)
	}
	if tl := tail(t, ctx, l); tl.LastStreamSeq != at.StreamSeq {
		t.Fatalf("failed fences changed the log: %+v, want last %d", tl, at.StreamSeq)
	}

	b, bEpoch, err := l.Fence(ctx, 2, "b", at.StreamSeq)
	if err != nil {
		t.Fatal(err)
	}
	b.SetNext(at.Seq, at.Bytes) // B read the log up to its epoch entry
	if bEpoch.StreamSeq != at.StreamSeq+1 || bEpoch.Seq != 0 {
		t.Fatalf("B's epoch entry %s after %+v", describe(bEpoch), at)
	}
	end := tail(t, ctx, l).LastStreamSeq

	// A is fenced off: a one-part and a multi-part transaction, and a
	// snapshot entry, all fail without a message getting in.
	for _, f := range []func() error{
		func() error { _, err := a.AppendTxn(ctx, wallog.Entry{Txn: txns[2]}); return err }, // 40 pages: 3 parts
		func() error { _, err := a.AppendTxn(ctx, wallog.Entry{Txn: txns[3]}); return err },
		func() error { _, err := a.AppendSnapshot(ctx, "snap", a.Position().Seq); return err },
	} {
		if err := f(); !errors.Is(err, wallog.ErrFenced) {
			t.Fatalf("old leader's append: %v", err)
		}
		if tl := tail(t, ctx, l); tl.LastStreamSeq != end {
			t.Fatalf("old leader got a message in: %+v, want last %d", tl, end)
		}
		if a.Position() != at {
			t.Fatalf("a failed append moved the Position: %+v, want %+v", a.Position(), at)
		}
	}

	// B goes on from A's last transaction.
	e := appendTxn(t, ctx, b, txns[2])
	if e.Seq != 3 || e.Epoch != 2 || e.Node != "b" || e.Bytes != uint64(txns[2].End-txns[0].Start) {
		t.Fatalf("B's first txn %s", describe(e))
	}
	r := read(t, ctx, l, 1)
	var kinds []string
	for {
		e := next(t, ctx, r)
		kinds = append(kinds, fmt.Sprintf("%s/%d/%d", e.Kind, e.Epoch, e.Seq))
		if r.Pending() == 0 {
			break
		}
	}
	if got, want := strings.Join(kinds, " "), "epoch/1/0 txn/1/1 txn/1/2 epoch/2/0 txn/2/3"; got != want {
		t.Fatalf("log holds %s, want %s", got, want)
	}
}

// rawCopy returns a message to publish by hand with the headers and data
// of the stored message seq (less the server's Nats-* headers).
func rawCopy(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string, seq uint64) *nats.Msg {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header{}
	for k, v := range raw.Header {
		if !strings.HasPrefix(k, "Nats-") {
			h[k] = append([]string(nil), v...)
		}
	}
	if h.Get("Gcl-Kind") == "" {
		t.Fatalf("message %d has no Gcl-Kind header: %v", seq, raw.Header)
	}
	return &nats.Msg{Subject: raw.Subject, Header: h, Data: bytes.Clone(raw.Data)}
}

func publish(t *testing.T, ctx context.Context, js jetstream.JetStream, m *nats.Msg) uint64 {
	t.Helper()
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// TestCorrupt: an entry whose bytes changed is refused (ErrCorrupt), and
// the Reader goes on with the next entry.
func TestCorrupt(t *testing.T) {
	ctx, js := startJS(t)
	l := openLog(t, ctx, js, "corrupt", 64<<10)
	txns := makeTxns(t, 2, 40)
	a, epoch, err := l.Fence(ctx, 1, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	small := appendTxn(t, ctx, a, txns[0])
	big := appendTxn(t, ctx, a, txns[1]) // 3 parts
	if big.StreamSeq-big.FirstStreamSeq != 2 {
		t.Fatalf("40 pages in %d parts", big.StreamSeq-big.FirstStreamSeq+1)
	}

	// A copy of the small txn with one data byte flipped, then an exact
	// copy (which must read as the original: the copying is sound).
	bad := rawCopy(t, ctx, js, "corrupt", small.StreamSeq)
	bad.Data[8+100] ^= 0x40
	badSeq := publish(t, ctx, js, bad)
	good := rawCopy(t, ctx, js, "corrupt", small.StreamSeq)
	goodSeq := publish(t, ctx, js, good)

	// The big txn again with a byte of its second part flipped, then
	// again with its frame header (a page number) changed in part 1.
	var bigBadSeq, pgnoBadSeq uint64
	for p := big.FirstStreamSeq; p <= big.StreamSeq; p++ {
		m := rawCopy(t, ctx, js, "corrupt", p)
		if p == big.FirstStreamSeq+1 {
			m.Data[len(m.Data)/2] ^= 1
		}
		bigBadSeq = publish(t, ctx, js, m)
	}
	for p := big.FirstStreamSeq; p <= big.StreamSeq; p++ {
		m := rawCopy(t, ctx, js, "corrupt", p)
		if p == big.FirstStreamSeq {
			m.Data[3] ^= 2 // first frame's page number
		}
		pgnoBadSeq = publish(t, ctx, js, m)
	}
	// A message with a mangled transaction header.
	hdrBad := rawCopy(t, ctx, js, "corrupt", small.StreamSeq)
	hdrBad.Header.Set("Gcl-Txn", "4096 x")
	hdrBadSeq := publish(t, ctx, js, hdrBad)
	// A frame missing at the end of a one-part txn: the body is still
	// whole frames, but the commit frame is gone.
	short := rawCopy(t, ctx, js, "corrupt", small.StreamSeq)
	short.Data = short.Data[:8+pageSize]
	shortSeq := publish(t, ctx, js, short)
	// A body that is not whole frames (cut short, or empty).
	cut := rawCopy(t, ctx, js, "corrupt", small.StreamSeq)
	cut.Data = cut.Data[:len(cut.Data)-5]
	cutSeq := publish(t, ctx, js, cut)
	empty := rawCopy(t, ctx, js, "corrupt", small.StreamSeq)
	empty.Data = nil
	emptySeq := publish(t, ctx, js, empty)
	last := rawCopy(t, ctx, js, "corrupt", small.StreamSeq)
	lastSeq := publish(t, ctx, js, last)

	r := read(t, ctx, l, 1)
	sameEntry(t, next(t, ctx, r), epoch)
	sameEntry(t, next(t, ctx, r), small)
	sameEntry(t, next(t, ctx, r), big)
	if b := nextBad(t, ctx, r, wallog.ErrCorrupt); b.StreamSeq != badSeq {
		t.Fatalf("bad entry reported at %d, published at %d", b.StreamSeq, badSeq)
	}
	want := small
	want.FirstStreamSeq, want.StreamSeq = goodSeq, goodSeq
	sameEntry(t, next(t, ctx, r), want)
	if b := nextBad(t, ctx, r, wallog.ErrCorrupt); b.StreamSeq != bigBadSeq {
		t.Fatalf("bad big entry reported at %d, its last part is %d", b.StreamSeq, bigBadSeq)
	}
	if b := nextBad(t, ctx, r, wallog.ErrCorrupt); b.StreamSeq != pgnoBadSeq {
		t.Fatalf("bad page number reported at %d, entry ends at %d", b.StreamSeq, pgnoBadSeq)
	}
	if b := nextBad(t, ctx, r, wallog.ErrCorrupt); b.StreamSeq != hdrBadSeq {
		t.Fatalf("bad header reported at %d, published at %d", b.StreamSeq, hdrBadSeq)
	}
	if b := nextBad(t, ctx, r, wallog.ErrCorrupt); b.StreamSeq != shortSeq {
		t.Fatalf("short txn reported at %d, published at %d", b.StreamSeq, shortSeq)
	}
	if b := nextBad(t, ctx, r, wallog.ErrTruncated); b.StreamSeq != cutSeq {
		t.Fatalf("cut body reported at %d, published at %d", b.StreamSeq, cutSeq)
	}
	if b := nextBad(t, ctx, r, wallog.ErrTruncated); b.StreamSeq != emptySeq {
		t.Fatalf("empty body reported at %d, published at %d", b.StreamSeq, emptySeq)
	}
	want.FirstStreamSeq, want.StreamSeq = lastSeq, lastSeq
	sameEntry(t, next(t, ctx, r), want)
	if r.Pending() != 0 {
		t.Fatalf("Pending %d at the end", r.Pending())
	}
}

// TestTruncated: a multi-part entry with a part missing is refused
// (ErrTruncated), and the entry after it is still read.
func TestTruncated(t *testing.T) {
	ctx, js := startJS(t)
	// Parts of 64 KiB cut frames; parts of 16 whole frames leave whole
	// frames when a part is missing, so only the part numbers tell.
	for _, maxPart := range []int{64 << 10, 16 * (8 + pageSize)} {
		t.Run(fmt.Sprint("maxPart=", maxPart), func(t *testing.T) { testTruncated(t, ctx, js, maxPart) })
	}
}

func testTruncated(t *testing.T, ctx context.Context, js jetstream.JetStream, maxPart int) {
	name := fmt.Sprint("trunc", maxPart)
	l := openLog(t, ctx, js, name, maxPart)
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	txns := makeTxns(t, 40, 1, 40, 2, 40, 3, 40, 40, 4)
	a, epoch, err := l.Fence(ctx, 1, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	var es []wallog.Entry
	for _, txn := range txns {
		es = append(es, appendTxn(t, ctx, a, txn))
	}
	for _, i := range []int{0, 2, 4, 6, 7} {
		if es[i].StreamSeq-es[i].FirstStreamSeq != 2 {
			t.Fatalf("txn %d in %d parts, want 3", i, es[i].StreamSeq-es[i].FirstStreamSeq+1)
		}
	}
	// Entry 0 loses its middle part, entry 2 its last, entry 4 its first;
	// entry 6 all but its first and entry 7 its first, so that entry 7's
	// second part is next after entry 6's first.
	for _, seq := range []uint64{es[0].FirstStreamSeq + 1, es[2].StreamSeq, es[4].FirstStreamSeq,
		es[6].FirstStreamSeq + 1, es[6].StreamSeq, es[7].FirstStreamSeq} {
		if err := s.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}

	r := read(t, ctx, l, 1)
	sameEntry(t, next(t, ctx, r), epoch)
	// Middle part missing: found at the last part.
	if b := nextBad(t, ctx, r, wallog.ErrTruncated); b.StreamSeq != es[0].StreamSeq {
		t.Fatalf("truncated entry reported at %d, its last part is %d", b.StreamSeq, es[0].StreamSeq)
	}
	sameEntry(t, next(t, ctx, r), es[1])
	// Last part missing: found when the next entry starts, which is
	// then read whole.
	if b := nextBad(t, ctx, r, wallog.ErrTruncated); b.StreamSeq != es[3].FirstStreamSeq {
		t.Fatalf("truncated entry reported at %d, the next entry starts at %d", b.StreamSeq, es[3].FirstStreamSeq)
	}
	sameEntry(t, next(t, ctx, r), es[3])
	// First part missing: each orphan part is refused.
	for seq := es[4].FirstStreamSeq + 1; seq <= es[4].StreamSeq; seq++ {
		if b := nextBad(t, ctx, r, wallog.ErrTruncated); b.StreamSeq != seq {
			t.Fatalf("orphan part reported at %d, want %d", b.StreamSeq, seq)
		}
	}
	sameEntry(t, next(t, ctx, r), es[5])
	// Another entry's part in the place of the missing one.
	for seq := es[7].FirstStreamSeq + 1; seq <= es[7].StreamSeq; seq++ {
		if b := nextBad(t, ctx, r, wallog.ErrTruncated); b.StreamSeq != seq {
			t.Fatalf("misplaced part reported at %d, want %d", b.StreamSeq, seq)
		}
	}
	sameEntry(t, next(t, ctx, r), es[8])
	if r.Pending() != 0 {
		t.Fatalf("Pending %d at the end", r.Pending())
	}
}

// TestPurge: after Purge(k) the log starts at stream sequence k and a
// Reader from 1 starts there; appends go on.
func TestPurge(t *testing.T) {
	ctx, js := startJS(t)
	l := openLog(t, ctx, js, "purge", 64<<10)
	txns := makeTxns(t, 1, 40, 2, 3, 1)
	a, _, err := l.Fence(ctx, 1, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	var es []wallog.Entry
	for _, txn := range txns[:4] {
		es = append(es, appendTxn(t, ctx, a, txn))
	}
	if err := l.Purge(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if tl := tail(t, ctx, l); tl.FirstStreamSeq != 1 {
		t.Fatalf("Purge(1) removed messages: %+v", tl)
	}
	k := es[2].FirstStreamSeq // after the 3-part entry
	if err := l.Purge(ctx, k); err != nil {
		t.Fatal(err)
	}
	tl := tail(t, ctx, l)
	if tl.FirstStreamSeq != k || tl.LastStreamSeq != es[3].StreamSeq || tl.Messages != es[3].StreamSeq-k+1 {
		t.Fatalf("Tail after Purge(%d): %+v", k, tl)
	}
	r := read(t, ctx, l, 1)
	sameEntry(t, next(t, ctx, r), es[2])
	sameEntry(t, next(t, ctx, r), es[3])
	if r.Pending() != 0 {
		t.Fatalf("Pending %d", r.Pending())
	}
	// The Appender still expects the last sequence, which a purge keeps.
	e := appendTxn(t, ctx, a, txns[4])
	if e.StreamSeq != es[3].StreamSeq+1 {
		t.Fatalf("append after the purge: %s", describe(e))
	}
	sameEntry(t, next(t, ctx, r), e)
}

// TestAbandonedEntry: a leader fenced off in the middle of a multi-part
// entry leaves its first parts in the log; the newer leader's epoch entry
// follows them. Readers drop the incomplete entry without an error (it
// never existed: its last part could not land), while an incomplete entry
// followed by an entry of the same epoch is still damage.
func TestAbandonedEntry(t *testing.T) {
	ctx, js := startJS(t)
	l := openLog(t, ctx, js, "abandon", 64<<10)
	s, err := js.Stream(ctx, "abandon")
	if err != nil {
		t.Fatal(err)
	}
	txns := makeTxns(t, 1, 40, 2)
	a, epoch1, err := l.Fence(ctx, 1, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	first := appendTxn(t, ctx, a, txns[0])
	big := appendTxn(t, ctx, a, txns[1]) // 3 parts
	// As if A was fenced after its first part: the other two never land.
	for seq := big.FirstStreamSeq + 1; seq <= big.StreamSeq; seq++ {
		if err := s.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	b, epoch2, err := l.Fence(ctx, 2, "b", big.StreamSeq)
	if err != nil {
		t.Fatal(err)
	}
	b.SetNext(first.Seq, first.Bytes)
	after := appendTxn(t, ctx, b, txns[2])

	r := read(t, ctx, l, 1)
	sameEntry(t, next(t, ctx, r), epoch1)
	sameEntry(t, next(t, ctx, r), first)
	sameEntry(t, next(t, ctx, r), epoch2) // the partial entry is dropped
	sameEntry(t, next(t, ctx, r), after)

	// The same, but what follows the partial entry is of its own epoch:
	// damage, reported.
	l2 := openLog(t, ctx, js, "abandon2", 64<<10)
	s2, err := js.Stream(ctx, "abandon2")
	if err != nil {
		t.Fatal(err)
	}
	a2, _, err := l2.Fence(ctx, 1, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	big2 := appendTxn(t, ctx, a2, txns[1])
	if err := s2.DeleteMsg(ctx, big2.StreamSeq); err != nil {
		t.Fatal(err)
	}
	next2 := appendTxn(t, ctx, a2, txns[2])
	r2 := read(t, ctx, l2, 2)
	if bad := nextBad(t, ctx, r2, wallog.ErrTruncated); bad.StreamSeq != next2.FirstStreamSeq {
		t.Fatalf("reported at %d, want %d", bad.StreamSeq, next2.FirstStreamSeq)
	}
	sameEntry(t, next(t, ctx, r2), next2)
}

// TestFencedPipeline: an old leader with entries in flight (published
// without waiting) when a newer leader fenced the log gets none of them
// in, not even those published after one that failed: were they chained
// by sequence number, the second would expect exactly the sequence the
// newer leader's epoch entry took, and land.
func TestFencedPipeline(t *testing.T) {
	ctx, js := startJS(t)
	l := openLog(t, ctx, js, "pipeline", 64<<10)
	txns := makeTxns(t, 1, 1, 40, 1)
	a, _, err := l.Fence(ctx, 1, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	appendTxn(t, ctx, a, txns[0])
	b, _, err := l.Fence(ctx, 2, "b", a.Position().StreamSeq)
	if err != nil {
		t.Fatal(err)
	}
	end := tail(t, ctx, l).LastStreamSeq
	var pending []*wallog.Pending
	for _, txn := range txns[1:] {
		p, err := a.AppendTxnAsync(wallog.Entry{Txn: txn})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, p)
	}
	for i, p := range pending {
		if err := p.Wait(ctx); !errors.Is(err, wallog.ErrFenced) {
			t.Fatalf("in-flight entry %d of the old leader: %v, want ErrFenced", i, err)
		}
	}
	if got := tail(t, ctx, l).LastStreamSeq; got != end {
		t.Fatalf("the old leader got %d messages in after the fence", got-end)
	}
	b.SetNext(1, 0)
	if p, err := b.AppendTxnAsync(wallog.Entry{Txn: txns[3]}); err != nil || p.Wait(ctx) != nil {
		t.Fatalf("the new leader's pipelined append: %v", err)
	}
}
