//go:build linux

package apply

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ozanturksever/go-cluster/replication/walfile"
)

var errCrash = errors.New("simulated crash")

// TestCrashAndReapply: Apply stops (as at a crash) at every stage of
// every kind of transaction; after reopening, the recorded position never
// claims the interrupted transaction unless it is fully durable, and
// re-applying the transaction after the recorded position gives a replica
// identical, byte for byte, to one that never crashed.
func TestCrashAndReapply(t *testing.T) {
	src, db := newSource(t, 100)
	info, img := snapshotBytes(t, db, SnapshotOptions{Seq: 100, Epoch: 1})
	workload(t, db, 1000)
	txns := readTestWAL(t, src+"-wal").after(t, info.Position)

	// The control: never crashed.
	control := restore(t, filepath.Join(t.TempDir(), "control"), info, img)
	applyAll(t, control, txns, 1)
	sameAsSource(t, control, db)
	want := stateOf(t, control)

	type point struct {
		stage Stage
		frame int
	}
	for k, tx := range txns {
		points := []point{
			{StageFrameWritten, 0},
			{StageFrameWritten, len(tx.Frames) / 2},
			{StageTruncated, 0},
			{StageDataSynced, 0},
			{StagePositionTempWritten, 0},
			{StagePositionRenamed, 0},
		}
		for _, p := range points {
			t.Run(fmt.Sprintf("txn%d-%d-pages-stage%d-frame%d", k, tx.CommitSize, p.stage, p.frame), func(t *testing.T) {
				crashAt(t, info, img, txns, k, p.stage, p.frame, want)
			})
		}
	}
}

func crashAt(t *testing.T, info SnapshotInfo, img []byte, txns []walfile.Txn, k int, stage Stage, frame int, want replicaState) {
	dir := filepath.Join(t.TempDir(), "replica")
	armed := false
	hook := func(s Stage, i int) error {
		if armed && s == stage && i == frame {
			return errCrash
		}
		return nil
	}
	r, err := RestoreSnapshot(dir, bytes.NewReader(img), info, WithHook(hook))
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, r, txns[:k], 1)
	seq := info.Seq + uint64(k) + 1
	armed = true
	if err := r.Apply(txns[k], seq, 1); !errors.Is(err, errCrash) {
		t.Fatalf("apply: %v, want the simulated crash", err)
	}
	if r.Applied().Seq != seq-1 {
		t.Fatalf("in memory, an interrupted apply moved the position to %d", r.Applied().Seq)
	}
	r.Close()

	// Restart.
	r, err = OpenReplica(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := r.Applied()
	switch {
	case stage == StagePositionRenamed:
		// The rename happened: the position (durable once the directory
		// is synced; the data was already) names the transaction.
		if got.Seq != seq {
			t.Fatalf("after the rename, position at seq %d, want %d", got.Seq, seq)
		}
		if err := r.Apply(txns[k], seq, 1); !errors.Is(err, ErrAlreadyApplied) {
			t.Fatalf("re-apply of an applied seq: %v", err)
		}
	default:
		// Before the rename the position must not claim seq.
		if got.Seq != seq-1 {
			t.Fatalf("position at seq %d after a crash at stage %d, want %d", got.Seq, stage, seq-1)
		}
		if err := r.Apply(txns[k], seq, 1); err != nil {
			t.Fatalf("re-apply: %v", err)
		}
	}
	applyAll(t, r, txns[k+1:], 1)
	if !stateOf(t, r).equal(want) {
		t.Fatal("replica after crash and re-apply differs from the one that never crashed")
	}
	if err := r.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestApplyBatch: batches give the same replica as one-by-one Apply, a
// bad entry refuses the whole batch untouched, and a crash inside a batch
// is repaired by re-applying the batch.
func TestApplyBatch(t *testing.T) {
	src, db := newSource(t, 100)
	info, img := snapshotBytes(t, db, SnapshotOptions{Seq: 0, Epoch: 1})
	workload(t, db, 1000)
	txns := readTestWAL(t, src+"-wal").after(t, info.Position)
	entries := make([]Entry, len(txns))
	for i, tx := range txns {
		entries[i] = Entry{Txn: tx, Seq: uint64(i + 1), Epoch: 1}
	}
	control := restore(t, filepath.Join(t.TempDir(), "control"), info, img)
	applyAll(t, control, txns, 1)
	want := stateOf(t, control)

	// A batch with a gap in the middle: refused, untouched.
	r := restore(t, filepath.Join(t.TempDir(), "r"), info, img)
	before := stateOf(t, r)
	bad := append(append([]Entry(nil), entries[:3]...), entries[4:6]...)
	if err := r.ApplyBatch(bad); !errors.Is(err, ErrGap) {
		t.Fatalf("batch with a gap: %v", err)
	}
	if !stateOf(t, r).equal(before) {
		t.Fatal("refused batch changed the replica")
	}

	// Crash in the middle of the second batch's page writes, then after
	// its data fsync.
	for _, stage := range []Stage{StageFrameWritten, StageTruncated, StageDataSynced} {
		dir := filepath.Join(t.TempDir(), fmt.Sprint("crash", stage))
		armed := false
		r, err := RestoreSnapshot(dir, bytes.NewReader(img), info, WithHook(func(s Stage, i int) error {
			if armed && s == stage && (i == 1 || s == StageDataSynced) {
				return errCrash
			}
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.ApplyBatch(entries[:3]); err != nil {
			t.Fatal(err)
		}
		armed = true
		if err := r.ApplyBatch(entries[3:7]); !errors.Is(err, errCrash) {
			t.Fatalf("stage %d: %v", stage, err)
		}
		r.Close()
		r, err = OpenReplica(dir)
		if err != nil {
			t.Fatal(err)
		}
		if r.Applied().Seq != 3 {
			t.Fatalf("stage %d: position at seq %d after the crash, want 3", stage, r.Applied().Seq)
		}
		if err := r.ApplyBatch(entries[3:7]); err != nil {
			t.Fatal(err)
		}
		if err := r.ApplyBatch(entries[7:]); err != nil {
			t.Fatal(err)
		}
		if !stateOf(t, r).equal(want) {
			t.Fatalf("stage %d: batched replica differs from the one-by-one one", stage)
		}
		r.Close()
	}
}

// TestDeferredPositionCrash: batches applied with ApplyBatchDeferred are
// durable, but position.json stays behind until SyncPosition or Close. A
// crash then leaves the file ahead of the written position; reopening and
// applying the log again from the written position gives the source's
// state exactly.
func TestDeferredPositionCrash(t *testing.T) {
	src, db := newSource(t, 80)
	info, img := snapshotBytes(t, db, SnapshotOptions{Seq: 1})
	dir := filepath.Join(t.TempDir(), "replica")
	r := restore(t, dir, info, img)
	defer r.Close()
	for base := 1000; base < 4000; base += 1000 {
		workload(t, db, base)
	}
	txns := readTestWAL(t, src+"-wal").after(t, info.Position)
	if len(txns) < 10 {
		t.Fatalf("only %d transactions", len(txns))
	}
	half := len(txns) / 2
	applyAll(t, r, txns[:half], 1)
	for i := half; i < len(txns); i += 3 {
		var batch []Entry
		for j := i; j < min(i+3, len(txns)); j++ {
			batch = append(batch, Entry{Txn: txns[j], Seq: uint64(j + 2), Epoch: 1, Cursor: uint64(j + 100)})
		}
		if err := r.ApplyBatchDeferred(batch); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Applied().Seq; got != uint64(len(txns)+1) {
		t.Fatalf("Applied().Seq %d after the deferred batches, want %d", got, len(txns)+1)
	}
	// The crash: the directory as it is on disk now.
	crashed := filepath.Join(t.TempDir(), "crashed")
	if err := os.MkdirAll(crashed, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{DBName, PositionName} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := OpenReplica(crashed)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Applied().Seq; got != uint64(half+1) {
		t.Fatalf("after the crash the position says %d, want the last written %d", got, half+1)
	}
	applyAll(t, c, txns[half:], 1)
	sameAsSource(t, c, db)

	// SyncPosition (and Close) write what was deferred.
	if err := r.SyncPosition(); err != nil {
		t.Fatal(err)
	}
	a, ok, err := readPosition(dir)
	if err != nil || !ok || a.Seq != uint64(len(txns)+1) || a.Cursor != uint64(len(txns)-1+100) {
		t.Fatalf("position after SyncPosition: %+v %v %v", a, ok, err)
	}
}
