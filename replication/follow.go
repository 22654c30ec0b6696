//go:build linux

package replication

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ozanturksever/go-cluster/replication/apply"
	"github.com/ozanturksever/go-cluster/replication/snapstore"
	"github.com/ozanturksever/go-cluster/replication/wallog"
)

// maxBatch bounds the transactions applied with one fsync.
const maxBatch = 256

// positionEvery is how often a following standby writes its position
// file (its replica's data is durable after every batch).
const positionEvery = 200 * time.Millisecond

// resyncPoll is how often a standby that needs a snapshot looks for one.
const resyncPoll = 250 * time.Millisecond

// Run follows the log as a standby until ctx ends. Promote stops the
// following and Demote starts it again; Run only starts it.
func (r *Replicator) Run(ctx context.Context) {
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	r.startFollowing()
	<-ctx.Done()
	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
	r.stopFollowing()
}

// startFollowing starts the standby loop (if not leading or following).
func (r *Replicator) startFollowing() {
	if r.startFollowingLocked() {
		// The server has the "applied?" subscription before this
		// standby's status says it follows.
		_ = r.cfg.NC.FlushTimeout(time.Second)
		r.update(func(s *Status) {
			if s.Role != RoleResyncing {
				s.Role = RoleStandby
			}
		})
	}
}

func (r *Replicator) startFollowingLocked() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || !r.running || r.leader != nil || r.follow != nil || r.rep == nil {
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r.follow, r.followed = cancel, done
	// Only a following standby answers a leader's "applied?": a leader
	// with no standby hears "no responders" at once.
	if sub, err := r.cfg.NC.Subscribe(r.waitSubject(), func(m *nats.Msg) { go r.answerWait(m) }); err == nil {
		r.waitSub = sub
	}
	go func() {
		defer close(done)
		r.followLoop(ctx)
	}()
	return true
}

// stopFollowing stops the standby loop and waits for it.
func (r *Replicator) stopFollowing() {
	r.mu.Lock()
	cancel, done, sub := r.follow, r.followed, r.waitSub
	r.follow, r.followed, r.waitSub = nil, nil, nil
	r.mu.Unlock()
	if sub != nil {
		sub.Unsubscribe()
	}
	if cancel != nil {
		cancel()
		<-done
	}
}

func (r *Replicator) followLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.catchUp(ctx, math.MaxUint64)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("replication: following the log failed; retrying", "err", err, "in", backoff)
		r.update(func(s *Status) { s.Error = err.Error() })
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// replica returns the open replica.
func (r *Replicator) replica() (*apply.Replica, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rep == nil {
		return nil, errClosed
	}
	return r.rep, nil
}

// catchUp applies the log from where the replica stands until it has
// processed stream sequence until (math.MaxUint64: until ctx ends),
// resyncing from a snapshot where the log cannot be applied.
func (r *Replicator) catchUp(ctx context.Context, until uint64) error {
	for {
		rep, err := r.replica()
		if err != nil {
			return err
		}
		from := max(rep.Applied().Cursor, r.processedCursor()) + 1
		if from > until {
			return nil
		}
		rd, err := r.cfg.Log.Read(ctx, from)
		if err != nil {
			return err
		}
		need, err := r.applyFrom(ctx, rd, rep, until)
		rd.Close()
		if errors.Is(err, errRestarted) {
			continue
		}
		if err != nil {
			return err
		}
		if need == 0 {
			return nil
		}
		if err := r.resync(ctx, need); err != nil {
			return err
		}
	}
}

func (r *Replicator) processedCursor() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.processed
}

// applyFrom applies entries from rd to rep until the stream sequence
// until is processed (then need is 0), or until an entry cannot be
// applied: need is then the smallest log cursor a snapshot must cover.
func (r *Replicator) applyFrom(ctx context.Context, rd *wallog.Reader, rep *apply.Replica, until uint64) (need uint64, err error) {
	// Reading runs ahead of applying: while a batch is being made durable
	// (fsyncs, milliseconds) the next entries arrive, and the next batch
	// takes all of them. Applying one entry at a time would cap a standby
	// at a few hundred transactions a second.
	rctx, stopReading := context.WithCancel(ctx)
	reads := make(chan readResult, 2*maxBatch)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			e, err := rd.Next(rctx)
			select {
			case reads <- readResult{e, err, rd.Pending()}:
			case <-rctx.Done():
				return
			}
			if err != nil && !wallog.IsBad(err) {
				return
			}
		}
	}()
	defer func() {
		stopReading()
		<-readerDone
	}()

	var batch []apply.Entry
	var last wallog.Entry
	var behind uint64
	seq := rep.Applied().Seq
	// Each batch is made durable (data fsync) before it counts as
	// applied; the position file, which only says where to resume after
	// a restart, is written at most every positionEvery (two fsyncs
	// saved per batch; see apply.ApplyBatchDeferred) and when this ends.
	lastPos := time.Now()
	defer func() {
		if perr := rep.SyncPosition(); perr != nil && !errors.Is(perr, apply.ErrClosed) {
			r.log.Warn("replication: position not written", "err", perr)
		}
	}()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := rep.ApplyBatchDeferred(batch)
		n := len(batch)
		batch = batch[:0]
		if err != nil {
			return err
		}
		if time.Since(lastPos) >= positionEvery {
			if err := rep.SyncPosition(); err != nil {
				return err
			}
			lastPos = time.Now()
		}
		r.advanced(rep, last, behind, n)
		return nil
	}
	for {
		if r.processedCursor() >= until {
			return 0, flush()
		}
		var res readResult
		if len(batch) > 0 {
			select {
			case res = <-reads:
			default:
				// Nothing more has arrived: apply what we have.
				if err := flush(); err != nil {
					return r.applyFailed(err, last)
				}
				continue
			}
		} else {
			select {
			case res = <-reads:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		e, err := res.e, res.err
		behind = res.pending
		var bad *wallog.BadEntryError
		if errors.As(err, &bad) {
			if ferr := flush(); ferr != nil {
				return r.applyFailed(ferr, last)
			}
			r.log.Error("replication: bad log entry: not applied; resyncing from a snapshot", "stream_seq", bad.StreamSeq, "err", bad.Err)
			r.event(EventBadEntry, fmt.Sprintf("log entry at stream sequence %d", bad.StreamSeq), 0, bad.Err)
			return bad.StreamSeq, nil
		}
		if err != nil {
			return 0, errors.Join(err, flush())
		}
		switch e.Kind {
		case wallog.KindTxn:
			switch {
			case e.Seq <= seq:
				// Applied before (a snapshot covered it). What is in the
				// batch comes first: processed must not run ahead of
				// what is durable.
				if err := flush(); err != nil {
					return r.applyFailed(err, last)
				}
				r.setProcessed(e)
				continue
			case e.Seq != seq+1:
				if err := flush(); err != nil {
					return r.applyFailed(err, last)
				}
				r.log.Warn("replication: gap in the log; resyncing from a snapshot", "applied", seq, "next", e.Seq)
				return e.FirstStreamSeq - 1, nil
			}
			batch = append(batch, apply.Entry{Txn: e.Txn, Seq: e.Seq, Epoch: e.Epoch, Cursor: e.StreamSeq})
			seq, last = e.Seq, e
			if len(batch) >= maxBatch || e.StreamSeq >= until {
				if err := flush(); err != nil {
					return r.applyFailed(err, last)
				}
			}
		case wallog.KindEpoch:
			if err := flush(); err != nil {
				return r.applyFailed(err, last)
			}
			r.setProcessed(e)
		case wallog.KindSnapshot:
			if err := flush(); err != nil {
				return r.applyFailed(err, last)
			}
			if e.Seq > seq {
				// The leader started over from a copy: take it.
				if err := r.restore(ctx, e.Snapshot, e.StreamSeq); err != nil {
					if ctx.Err() != nil {
						return 0, err
					}
					// Its object gone or damaged: a newer snapshot
					// will do, which resync asks for.
					r.log.Warn("replication: the log's snapshot cannot be restored; resyncing", "snapshot", e.Snapshot, "err", err)
					return e.StreamSeq, nil
				}
				return 0, errRestarted
			}
			r.setProcessed(e)
		}
	}
}

type readResult struct {
	e       wallog.Entry
	err     error
	pending uint64
}

// applyFailed decides what a failed ApplyBatch means: a log that does not
// continue the replica needs a snapshot; anything else (I/O) is an error.
func (r *Replicator) applyFailed(err error, last wallog.Entry) (uint64, error) {
	if errors.Is(err, apply.ErrChainBroken) || errors.Is(err, apply.ErrGap) || errors.Is(err, apply.ErrStaleEpoch) {
		r.log.Error("replication: log does not continue the replica; resyncing", "err", err)
		r.event(EventBadEntry, fmt.Sprintf("log entry at stream sequence %d does not continue the replica", last.StreamSeq), last.Epoch, err)
		return last.StreamSeq, nil
	}
	return 0, err
}

// errRestarted: the replica was replaced; read again from its cursor.
var errRestarted = errors.New("replication: replica restored; reading on")

// advanced records that rep applied up to e.
func (r *Replicator) advanced(rep *apply.Replica, e wallog.Entry, behind uint64, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.processed = max(r.processed, e.StreamSeq)
	r.maxEpoch = max(r.maxEpoch, e.Epoch)
	r.lastApplied = time.Now()
	lag := r.lastApplied.Sub(e.Time)
	r.updateLocked(func(s *Status) {
		a := rep.Applied()
		s.Seq, s.Cursor, s.Epoch, s.Bytes = a.Seq, a.Cursor, a.Epoch, e.Bytes
		s.LagMS = float64(lag.Microseconds()) / 1000
		s.Behind = behind
		s.Applied += int64(n)
		s.Error = ""
	})
	if r.cfg.Applied != nil {
		r.cfg.Applied(e, lag)
	}
	// Lag as events: once when it passes LagAlert, once when it is back
	// under half of it, so the feed shows episodes, not every apply.
	switch {
	case !r.lagging && lag > r.cfg.LagAlert:
		r.lagging = true
		go r.event(EventLagging, fmt.Sprintf("%s behind the leader (%d messages to apply)", lag.Round(time.Millisecond), behind), e.Epoch, nil)
	case r.lagging && lag < r.cfg.LagAlert/2:
		r.lagging = false
		go r.event(EventCaughtUp, fmt.Sprintf("%s behind the leader", lag.Round(time.Millisecond)), e.Epoch, nil)
	}
	r.advancedLocked()
}

func (r *Replicator) setProcessed(e wallog.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.processed = max(r.processed, e.StreamSeq)
	r.maxEpoch = max(r.maxEpoch, e.Epoch)
	if e.Kind == wallog.KindEpoch {
		r.status.Epoch = max(r.status.Epoch, e.Epoch)
	}
	r.status.Bytes = max(r.status.Bytes, e.Bytes)
	r.advancedLocked()
}

// resync replaces the replica with the newest snapshot that covers the log
// up to cursor need, asking the leader for one until there is one.
func (r *Replicator) resync(ctx context.Context, need uint64) error {
	if need == 0 {
		return nil
	}
	r.update(func(s *Status) { s.Role = RoleResyncing; s.Resyncs++ })
	defer r.update(func(s *Status) {
		if s.Role == RoleResyncing {
			s.Role = RoleStandby
		}
	})
	r.event(EventResync, fmt.Sprintf("needs a snapshot covering stream sequence %d", need), 0, nil)
	asked := time.Time{}
	for {
		m, err := r.latestValid(ctx, need)
		if err == nil {
			return r.restore(ctx, m.Name, m.Cursor)
		}
		if !errors.Is(err, snapstore.ErrNoSnapshot) {
			r.log.Warn("replication: listing snapshots", "err", err)
		}
		if time.Since(asked) > 2*time.Second {
			// The leader (if any) takes one; fire and forget.
			_ = r.cfg.NC.Publish(r.snapshotSubject(), []byte(strconv.FormatUint(need, 10)))
			asked = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replication: no snapshot covers stream sequence %d: %w", need, ctx.Err())
		case <-time.After(resyncPoll):
		}
	}
}

// latestValid is the newest snapshot covering cursor need that is not
// behind the replica. A reset snapshot (one a leader took when it lost
// track of its WAL) counts only once its entry is in the log: the leader
// uploads it first and may die before appending the entry.
func (r *Replicator) latestValid(ctx context.Context, need uint64) (snapstore.Meta, error) {
	list, err := r.cfg.Snapshots.List(ctx)
	if err != nil {
		return snapstore.Meta{}, err
	}
	rep, err := r.replica()
	if err != nil {
		return snapstore.Meta{}, err
	}
	for i := len(list) - 1; i >= 0; i-- {
		m := list[i]
		if m.Cursor < need || m.Seq < rep.Applied().Seq {
			continue
		}
		if r.valid(ctx, m) {
			return m, nil
		}
	}
	return snapstore.Meta{}, snapstore.ErrNoSnapshot
}

// valid reports whether a snapshot may be restored: an ordinary one
// always, a reset one once the log holds its entry.
func (r *Replicator) valid(ctx context.Context, m snapstore.Meta) bool {
	if !m.Reset {
		return true
	}
	e, err := r.cfg.Log.EntryAt(ctx, m.Cursor)
	return err == nil && e.Kind == wallog.KindSnapshot && e.Snapshot == m.Name
}

// restore replaces the replica with snapshot name, at log cursor cursor.
func (r *Replicator) restore(ctx context.Context, name string, cursor uint64) error {
	r.mu.Lock()
	old := r.rep
	r.rep = nil
	r.mu.Unlock()
	if old == nil {
		return errClosed
	}
	start := time.Now()
	var rep *apply.Replica
	var m snapstore.Meta
	err := old.Close()
	if err == nil {
		// The log entry's own sequence is where to read on, whatever
		// the leader predicted when it uploaded.
		rep, m, err = r.cfg.Snapshots.RestoreAt(ctx, name, r.cfg.Dir, cursor)
	}
	if err != nil {
		// Keep a replica open: the old one, intact (a restore installs
		// nothing it did not check).
		reopened, oerr := apply.OpenReplica(r.cfg.Dir)
		r.mu.Lock()
		r.rep = reopened
		r.mu.Unlock()
		return errors.Join(err, oerr)
	}
	r.mu.Lock()
	r.rep = rep
	r.processed = cursor
	a := rep.Applied()
	r.updateLocked(func(s *Status) { s.Seq, s.Cursor, s.Epoch, s.Bytes = a.Seq, a.Cursor, a.Epoch, m.Bytes })
	r.advancedLocked()
	r.mu.Unlock()
	r.log.Info("replication: replica restored from a snapshot", "snapshot", name, "seq", a.Seq, "bytes", m.Size(), "took", time.Since(start))
	return nil
}
