//go:build linux

package replication

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ozanturksever/go-cluster/replication/apply"
	"github.com/ozanturksever/go-cluster/replication/capture"
	"github.com/ozanturksever/go-cluster/replication/snapstore"
	"github.com/ozanturksever/go-cluster/replication/walfile"
	"github.com/ozanturksever/go-cluster/replication/wallog"
)

// fenceAttempts bounds how often Promote reads on and fences again while
// an older leader still appends.
const fenceAttempts = 20

// Promote makes this node the app's replication leader for epoch: it
// stops following, fences the log, applies the log to its end, checks the
// replica, makes it the database at Config.Path and starts shipping. It
// returns only when the database is in place: the app may start. On an
// error nothing is shipped and the node follows again.
func (r *Replicator) Promote(ctx context.Context, epoch uint64) (err error) {
	r.stopFollowing()
	start := time.Now()
	r.update(func(s *Status) { s.Role = RolePromoting; s.Error = "" })
	defer func() {
		if err != nil {
			r.event(EventPromoteFail, "", epoch, err)
			r.update(func(s *Status) { s.Error = err.Error() })
			r.startFollowing()
		}
	}()
	if rep, err := r.replica(); err != nil {
		return err
	} else if a := rep.Applied(); epoch <= a.Epoch {
		return fmt.Errorf("%w: epoch %d, the replica already holds epoch %d", ErrStaleEpoch, epoch, a.Epoch)
	}
	// Fence first, then read up to our own epoch entry: after it nothing
	// of an older leader can land, so reading to it is reading all.
	var app *wallog.Appender
	var fence wallog.Entry
	var tail wallog.Tail
	for attempt := 1; ; attempt++ {
		var err error
		if tail, err = r.cfg.Log.Tail(ctx); err != nil {
			return err
		}
		app, fence, err = r.cfg.Log.Fence(ctx, epoch, r.cfg.Node, tail.LastStreamSeq)
		if errors.Is(err, wallog.ErrFenced) && attempt < fenceAttempts {
			continue // an older leader appended meanwhile
		}
		if err != nil {
			return err
		}
		break
	}
	fenced := time.Now()
	r.mu.Lock()
	if r.processed == tail.LastStreamSeq && r.processed > 0 {
		// The standby had dealt with everything before our epoch entry
		// (the usual handoff): nothing to read.
		r.processed = fence.StreamSeq
	}
	r.mu.Unlock()
	if err := r.catchUp(ctx, fence.StreamSeq); err != nil {
		return fmt.Errorf("replication: catch up to our epoch entry at %d: %w", fence.StreamSeq, err)
	}
	// A fence only orders appends; it does not know epochs. A node
	// promoting with an epoch older than one already in the log (it
	// stalled between winning its lease and fencing) must not lead: the
	// newer leader's next append fails (ours came after it), and the
	// next election sorts it out with nothing lost.
	r.mu.Lock()
	seen := r.maxEpoch
	r.mu.Unlock()
	if seen > epoch {
		return fmt.Errorf("%w: epoch %d, the log already holds epoch %d", ErrStaleEpoch, epoch, seen)
	}
	{
		rep, err := r.replica()
		if err != nil {
			return err
		}
		app.SetNext(rep.Applied().Seq, r.Status().Bytes)
	}
	rep, err := r.replica()
	if err != nil {
		return err
	}
	bootstrap := rep.Applied().PageSize == 0
	if !bootstrap {
		if err := os.MkdirAll(filepath.Dir(r.cfg.Path), 0o755); err != nil {
			return err
		}
		if err := rep.CheckAndPromoteTo(ctx, r.cfg.Path); err != nil {
			return fmt.Errorf("replication: replica not promoted: %w", err)
		}
	} else if err := os.MkdirAll(filepath.Dir(r.cfg.Path), 0o755); err != nil {
		return err
	}
	installed := time.Now()
	cp, err := capture.Open(ctx, r.cfg.Path)
	if err != nil {
		return err
	}
	l := &leader{
		r: r, epoch: epoch, app: app, cap: cp, wake: make(chan struct{}, 1), lastSnap: time.Now(),
		shippedCh: make(chan struct{}), dead: make(chan struct{}), acks: make(chan inflight, maxInflight),
		pos: app.Position(), dealt: cp.Stats().Txns,
	}
	if bootstrap {
		// Nothing to promote: this database is the first. Standbys start
		// from a copy of it.
		if err := l.snapshot(ctx, true); err != nil {
			cp.Close()
			return fmt.Errorf("replication: first snapshot: %w", err)
		}
		r.event(EventBootstrapped, "the log starts from this node's database", epoch, nil)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.done, l.confirmed = make(chan struct{}), make(chan struct{})
	r.mu.Lock()
	r.leader = l
	pos := app.Position()
	r.updateLocked(func(s *Status) {
		s.Role, s.Epoch, s.Seq, s.Cursor, s.Bytes, s.LagMS, s.Behind = RoleLeader, epoch, pos.Seq, pos.StreamSeq, pos.Bytes, 0, 0
	})
	r.mu.Unlock()
	// Only the leader listens for snapshot requests, so that a request
	// with no leader gets "no responders" at once.
	if sub, err := r.cfg.NC.Subscribe(r.snapshotSubject(), l.requestSnapshot); err == nil {
		l.subs = append(l.subs, sub)
	} else {
		r.log.Warn("replication: snapshot requests will not be answered", "err", err)
	}
	if sub, err := r.cfg.NC.Subscribe(RestoreSubject(r.cfg.Subject), func(m *nats.Msg) { go r.answerRestore(m) }); err == nil {
		l.subs = append(l.subs, sub)
	} else {
		r.log.Warn("replication: restore requests will not be answered", "err", err)
	}
	go l.run()
	go l.confirm()
	r.log.Info("replication: promoted", "epoch", epoch, "seq", pos.Seq, "took", time.Since(start), "bootstrap", bootstrap,
		"fence", fenced.Sub(start), "catch_up_and_install", installed.Sub(fenced), "capture", time.Since(installed))
	r.event(EventPromoted, fmt.Sprintf("at transaction %d in %s", pos.Seq, time.Since(start).Round(time.Millisecond)), epoch, nil)
	return nil
}

// Demote ends this node's leadership and follows again. Gracefully (a
// step-down or drain, the app already stopped) it first ships every
// committed transaction and waits, within ctx, until a standby has applied
// them; otherwise (the lease is lost) it stops shipping at once.
func (r *Replicator) Demote(ctx context.Context, graceful bool) error {
	r.mu.Lock()
	l := r.leader
	r.mu.Unlock()
	if l == nil {
		r.startFollowing()
		return nil
	}
	var err error
	if graceful {
		err = l.handoff(ctx)
	}
	err = errors.Join(err, l.stop())
	r.mu.Lock()
	r.leader = nil
	// Not the leader any more, following or not (Run may have ended).
	r.updateLocked(func(s *Status) { s.Role = RoleStarting })
	r.mu.Unlock()
	r.startFollowing()
	return err
}

// leader is one term of shipping.
type leader struct {
	r     *Replicator
	epoch uint64
	app   *wallog.Appender
	cap   *capture.Capturer

	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // run returned
	confirmed chan struct{} // confirm returned
	acks      chan inflight
	dead      chan struct{}        // closed by the first failure
	wake      chan struct{}        // a snapshot was requested
	subs      []*nats.Subscription // snapshot and restore requests

	bg sync.WaitGroup // snapshot uploads

	mu  sync.Mutex
	pos wallog.Position // the log's position after the last acknowledged entry (app's, for other goroutines)
	// dealt counts the capture's transactions dealt with: shipped and
	// acknowledged, or held by a reset snapshot (capture.SyncPoint).
	dealt        int64
	resets       int // reset snapshots taken (they hold what was queued)
	shippedCh    chan struct{}
	err          error // why shipping stopped
	lastSnap     time.Time
	sinceSnap    uint64 // log bytes since the last snapshot
	lastSnapSize uint64 // the last snapshot's size
	uploading    bool
	requested    bool
	waiters      []*nats.Msg // snapshot requests to answer when the next snapshot is stored
}

// run ships until stopped or failed.
func (l *leader) run() {
	defer close(l.done)
	for {
		txn, err := l.next()
		if l.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errSnapshotDue) {
			err = l.snapshot(l.ctx, false)
			if err != nil && !errors.Is(err, capture.ErrLostContinuity) && l.ctx.Err() == nil {
				l.r.log.Warn("replication: snapshot failed", "err", err)
				l.r.event(EventSnapshot, "failed", l.epoch, err)
			}
			if !errors.Is(err, capture.ErrLostContinuity) {
				continue
			}
		}
		if errors.Is(err, capture.ErrLostContinuity) {
			l.r.log.Warn("replication: lost track of the WAL; starting the log over from a snapshot", "err", err)
			l.r.event(EventLostWAL, "", l.epoch, err)
			err = l.snapshot(l.ctx, true)
			if err == nil {
				continue
			}
		}
		if err == nil {
			err = l.ship(txn)
			if err == nil {
				continue
			}
		}
		if l.ctx.Err() != nil {
			return
		}
		l.fail(err)
		return
	}
}

var errSnapshotDue = errors.New("snapshot due")

// next waits for the next transaction, or returns errSnapshotDue when a
// snapshot is due (by time, size or request).
func (l *leader) next() (walfile.Txn, error) {
	l.mu.Lock()
	// By size: once the log since the last snapshot outweighs the
	// database, a standby starting over is better served by a new copy.
	due := l.requested || l.sinceSnap >= max(l.r.cfg.SnapshotBytes, l.lastSnapSize)
	wait := time.Until(l.lastSnap.Add(l.r.cfg.SnapshotInterval))
	uploading := l.uploading
	l.mu.Unlock()
	if uploading {
		due, wait = false, time.Hour
	}
	if due || wait <= 0 {
		return walfile.Txn{}, errSnapshotDue
	}
	ctx, cancel := context.WithTimeoutCause(l.ctx, wait, errSnapshotDue)
	defer cancel()
	woke := make(chan struct{})
	defer close(woke)
	go func() {
		select {
		case <-l.wake:
			cancel()
		case <-woke:
		}
	}()
	txn, err := l.cap.Next(ctx)
	// Only our own timer or wake-up means a snapshot: any other error
	// (lost continuity above all) is the caller's to see.
	if err != nil && l.ctx.Err() == nil && ctx.Err() != nil &&
		(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return txn, errSnapshotDue
	}
	return txn, err
}

// maxInflight bounds the entries published and not yet acknowledged.
const maxInflight = 512

// ackTimeout bounds the wait for one entry's acknowledgement.
const ackTimeout = 10 * time.Second

// inflight is a shipped transaction awaiting its acknowledgement.
type inflight struct {
	p     *wallog.Pending
	size  uint64
	count int64 // the capture's count of returned transactions after it
}

// ship publishes one transaction without waiting for its acknowledgement
// (confirm waits, in order): the leader keeps up to maxInflight entries
// in flight, so that the round trip to JetStream does not bound the rate.
func (l *leader) ship(txn walfile.Txn) error {
	p, err := l.app.AppendTxnAsync(wallog.Entry{Txn: txn, Time: time.Now()})
	if err != nil {
		return err
	}
	f := inflight{p: p, size: uint64(txn.End - txn.Start), count: l.cap.Stats().Txns}
	select {
	case l.acks <- f:
		return nil
	case <-l.dead:
		return l.failure()
	case <-l.ctx.Done():
		return l.ctx.Err()
	}
}

// confirm waits for the acknowledgements in order and records what the
// log holds; the first failure stops shipping (every later append fails
// too, see wallog.AppendTxnAsync).
func (l *leader) confirm() {
	defer close(l.confirmed)
	for {
		var f inflight
		select {
		case f = <-l.acks:
		case <-l.ctx.Done():
			return
		}
		// An acknowledgement lost without a disconnect (a stream leader
		// change) would otherwise leave this waiting for ever, the app
		// writing and nothing shipped: an unknown outcome, like a failed
		// publish, ends the term.
		wctx, cancel := context.WithTimeout(l.ctx, ackTimeout)
		err := f.p.Wait(wctx)
		cancel()
		if err != nil {
			if l.ctx.Err() == nil {
				l.fail(fmt.Errorf("replication: entry %d not acknowledged: %w", f.p.Entry.Seq, err))
			}
			return
		}
		e := f.p.Entry
		l.mu.Lock()
		l.pos = wallog.Position{StreamSeq: e.StreamSeq, Seq: e.Seq, Bytes: e.Bytes}
		l.dealt = f.count
		l.sinceSnap += f.size
		l.signalLocked()
		l.mu.Unlock()
		l.r.update(func(s *Status) {
			s.Seq, s.Cursor, s.Bytes = e.Seq, e.StreamSeq, e.Bytes
			s.Applied++
		})
	}
}

// signalLocked wakes whoever waits on what the log holds (flush,
// waitAcked); l.mu is held.
func (l *leader) signalLocked() {
	close(l.shippedCh)
	l.shippedCh = make(chan struct{})
}

// waitAcked waits until the log acknowledged everything up to stream
// sequence seq.
func (l *leader) waitAcked(ctx context.Context, seq uint64) error {
	for {
		l.mu.Lock()
		pos, ch, err := l.pos, l.shippedCh, l.err
		l.mu.Unlock()
		if err != nil {
			return err
		}
		if pos.StreamSeq >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *leader) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// fail records why shipping stopped and tells the caller, which steps
// down: a leader that cannot ship must not go on taking writes. Only the
// first failure counts.
func (l *leader) fail(err error) {
	first := false
	l.mu.Lock()
	if l.err == nil {
		l.err, first = err, true
		close(l.dead)
		l.signalLocked()
	}
	l.mu.Unlock()
	if !first {
		return
	}
	kind := EventShipFailed
	if errors.Is(err, wallog.ErrFenced) {
		kind = EventFenced
	}
	l.r.log.Error("replication: shipping stopped; stepping down", "epoch", l.epoch, "err", err)
	l.r.event(kind, "", l.epoch, err)
	l.r.update(func(s *Status) { s.Error = err.Error() })
	if l.r.cfg.Failed != nil {
		l.r.cfg.Failed(l.epoch, err)
	}
}

// Flush ships everything committed to the leader's database so far and
// returns the log position after it: once it returns, those transactions
// are in the log (acknowledged by JetStream), so no failover can lose
// them. Only on the leader (ErrNotLeader otherwise).
func (r *Replicator) Flush(ctx context.Context) (wallog.Position, error) {
	r.mu.Lock()
	l := r.leader
	r.mu.Unlock()
	if l == nil {
		return wallog.Position{}, ErrNotLeader
	}
	return l.flush(ctx)
}

// ErrStaleEpoch: a promotion with an epoch older than one already in the
// log or the replica.
var ErrStaleEpoch = errors.New("replication: stale epoch")

// ErrNotLeader: the call needs this node to be the replication leader.
var ErrNotLeader = errors.New("replication: not the leader")

func (l *leader) flush(ctx context.Context) (wallog.Position, error) {
	l.mu.Lock()
	resets := l.resets
	l.mu.Unlock()
	target, err := l.cap.Sync(ctx)
	if err != nil {
		return wallog.Position{}, fmt.Errorf("replication: read the last transactions: %w", err)
	}
	for {
		l.mu.Lock()
		dealt, ch, ferr, pos, reset := l.dealt, l.shippedCh, l.err, l.pos, l.resets != resets
		l.mu.Unlock()
		if ferr != nil {
			return pos, fmt.Errorf("replication: shipping failed: %w", ferr)
		}
		// At or past the target: the shipper may have gone on to later
		// transactions before this looks. A reset snapshot since (it
		// can only follow a loss of continuity after the target was
		// read) holds everything up to the target, queued or not.
		if dealt >= target.Returned || reset {
			return pos, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return pos, fmt.Errorf("replication: the last transactions were not shipped: %w", ctx.Err())
		}
	}
}

// handoff ships everything committed (the app is stopped) and waits for a
// standby to apply it.
func (l *leader) handoff(ctx context.Context) error {
	start := time.Now()
	at, err := l.flush(ctx)
	if err != nil {
		return fmt.Errorf("replication: handoff: %w", err)
	}
	wait := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl))
	}
	node, err := l.r.waitStandby(ctx, at, wait)
	switch {
	case errors.Is(err, ErrNoStandby):
		l.r.log.Warn("replication: handoff: no standby is following; the log holds everything", "seq", at.Seq)
		return nil
	case err != nil:
		return fmt.Errorf("replication: handoff: %w", err)
	}
	l.r.log.Info("replication: handed off", "to", node, "seq", at.Seq, "took", time.Since(start))
	l.r.event(EventHandoff, fmt.Sprintf("%s applied transaction %d", node, at.Seq), l.epoch, nil)
	return nil
}

// ErrNoStandby: no standby follows the log to confirm a transaction.
var ErrNoStandby = errors.New("replication: no standby is following")

// waitStandby waits, at most wait, until a standby has applied the log up
// to at (durably: its replica fsynced) and returns its name.
func (r *Replicator) waitStandby(ctx context.Context, at wallog.Position, wait time.Duration) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	msg, err := r.cfg.NC.RequestWithContext(rctx, r.waitSubject(),
		[]byte(fmt.Sprintf("%d %d %s", at.StreamSeq, wait.Milliseconds(), r.cfg.Node)))
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return "", ErrNoStandby
	case err != nil:
		return "", fmt.Errorf("no standby confirmed transaction %d: %w", at.Seq, err)
	}
	return string(msg.Data), nil
}

// Replicate is the synchronous commit: it ships every transaction
// committed so far (Flush) and waits until a standby has applied them
// durably. ErrNoStandby when none follows (the transactions are in the
// log all the same).
func (r *Replicator) Replicate(ctx context.Context) error {
	at, err := r.Flush(ctx)
	if err != nil {
		return err
	}
	wait := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	_, err = r.waitStandby(ctx, at, wait)
	return err
}

// stop ends shipping and closes the capture.
func (l *leader) stop() error {
	for _, sub := range l.subs {
		sub.Unsubscribe()
	}
	if l.cancel != nil {
		l.cancel()
		<-l.done
		<-l.confirmed
		l.bg.Wait()
	}
	return l.cap.Close()
}

// requestSnapshot answers a standby's request for a snapshot.
func (l *leader) requestSnapshot(m *nats.Msg) {
	l.mu.Lock()
	l.requested = true
	if m.Reply != "" {
		l.waiters = append(l.waiters, m)
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// snapshot copies the database. A reset snapshot starts the log over
// (the capture lost track of the WAL, or this is the first leader): the
// copy replaces every transaction not shipped, and is uploaded before its
// entry is appended. An ordinary one is a checkpoint of the log for
// standbys that start or fall behind: the transactions it holds are
// shipped first, then it is uploaded in the background and the log purged
// up to the oldest snapshot kept.
func (l *leader) snapshot(ctx context.Context, reset bool) error {
	l.mu.Lock()
	l.requested = false
	l.lastSnap = time.Now()
	l.sinceSnap = 0
	l.mu.Unlock()
	if reset {
		return l.resetSnapshot(ctx)
	}
	l.mu.Lock()
	if l.uploading {
		// One at a time; the request stays pending for the next.
		l.requested = len(l.waiters) > 0
		l.mu.Unlock()
		return nil
	}
	waiters := l.waiters
	l.waiters = nil
	l.uploading = true
	l.mu.Unlock()
	// The barrier is quick; the copy, the hash and the upload run in the
	// background while shipping goes on.
	sc, err := l.cap.BeginSnapshot(ctx)
	if err != nil {
		l.doneUploading(waiters, snapstore.Meta{}, err)
		return err
	}
	for range sc.Pending { // in the copy: shipped first, so it ends on a log entry
		txn, err := l.cap.Next(ctx)
		if err == nil {
			err = l.ship(txn)
		}
		if err != nil {
			sc.Close()
			l.doneUploading(waiters, snapstore.Meta{}, err)
			return err
		}
	}
	at := l.app.Position()
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		m, err := l.storeSnapshot(sc, at)
		if err != nil && l.ctx.Err() == nil {
			l.r.log.Warn("replication: snapshot failed", "err", err)
			l.r.event(EventSnapshot, "failed", l.epoch, err)
		}
		l.doneUploading(waiters, m, err)
	}()
	return nil
}

// doneUploading ends a snapshot and answers the requests it served.
func (l *leader) doneUploading(waiters []*nats.Msg, m snapstore.Meta, err error) {
	l.mu.Lock()
	l.uploading = false
	again := l.requested // asked for while this one was on its way
	l.mu.Unlock()
	if again {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	reply := snapshotReply{Meta: m}
	if err != nil {
		reply = snapshotReply{Error: err.Error()}
	}
	b, _ := json.Marshal(reply)
	for _, w := range waiters {
		_ = w.Respond(b)
	}
}

// snapshotReply answers RequestSnapshot.
type snapshotReply struct {
	Meta  snapstore.Meta `json:"meta"`
	Error string         `json:"error,omitempty"`
}

// storeSnapshot copies, uploads and applies retention for an ordinary
// snapshot whose state ends with the log entry at.
func (l *leader) storeSnapshot(sc *capture.SnapshotCopy, at wallog.Position) (snapstore.Meta, error) {
	r := l.r
	start := time.Now()
	tmp := filepath.Join(r.cfg.Dir, fmt.Sprintf("snapshot-%d.tmp", time.Now().UnixNano()))
	defer os.Remove(tmp)
	err := sc.Copy(l.ctx, tmp)
	sc.Close() // the copy's read transaction holds the WAL: end it now
	if err != nil {
		return snapstore.Meta{}, err
	}
	info, err := describe(tmp, sc.Position)
	if err != nil {
		return snapstore.Meta{}, err
	}
	info.Epoch, info.Seq, info.Cursor = l.epoch, at.Seq, at.StreamSeq
	l.mu.Lock()
	l.lastSnapSize = uint64(info.Size())
	l.mu.Unlock()
	// Only a snapshot whose transactions are all in the log is one a
	// standby may continue from.
	if err := l.waitAcked(l.ctx, at.StreamSeq); err != nil {
		return snapstore.Meta{}, err
	}
	m, err := r.cfg.Snapshots.Put(l.ctx, tmp, snapstore.Meta{SnapshotInfo: info, Bytes: at.Bytes, Node: r.cfg.Node})
	if err != nil {
		return snapstore.Meta{}, err
	}
	// A reset snapshot whose entry never landed (its leader died between
	// the upload and the append) must not count as one of those kept.
	oldest, err := r.cfg.Snapshots.Prune(l.ctx, r.cfg.Retain, func(m snapstore.Meta) bool { return r.valid(l.ctx, m) })
	if err == nil {
		err = r.cfg.Log.Purge(l.ctx, purgeTo(oldest))
	}
	if err != nil {
		r.log.Warn("replication: retention", "err", err)
	}
	r.log.Info("replication: snapshot stored", "name", m.Name, "seq", m.Seq, "bytes", m.Size(), "took", time.Since(start))
	r.event(EventSnapshot, fmt.Sprintf("%s at transaction %d (%d bytes)", m.Name, m.Seq, m.Size()), l.epoch, nil)
	return m, nil
}

// resetSnapshot starts the log over from a copy of the database, inline:
// nothing is shipped until its entry is in.
func (l *leader) resetSnapshot(ctx context.Context) error {
	r := l.r
	tmp := filepath.Join(r.cfg.Dir, fmt.Sprintf("snapshot-%d.tmp", time.Now().UnixNano()))
	defer os.Remove(tmp)
	start := time.Now()
	pos, pending, err := l.cap.Snapshot(ctx, tmp)
	if err != nil {
		return err
	}
	copied := time.Now()
	info, err := describe(tmp, pos)
	if err != nil {
		return err
	}
	hashed := time.Now()
	// What is in flight lands before the snapshot's entry (or the entry
	// fails with it); wait, so the acknowledged position is the
	// snapshot's once its entry is in.
	if err := l.waitAcked(ctx, l.app.Position().StreamSeq); err != nil {
		return err
	}
	for range pending { // already in the copy
		if _, err := l.cap.Next(ctx); err != nil {
			return err
		}
	}
	at := l.app.Position()
	info.Epoch, info.Seq, info.Cursor = l.epoch, at.Seq+1, at.StreamSeq+1
	l.mu.Lock()
	l.lastSnapSize = uint64(info.Size())
	l.mu.Unlock()
	m, err := r.cfg.Snapshots.Put(ctx, tmp, snapstore.Meta{SnapshotInfo: info, Bytes: at.Bytes, Reset: true, Node: r.cfg.Node})
	if err != nil {
		return err
	}
	r.log.Info("replication: snapshot stored", "name", m.Name, "seq", m.Seq, "bytes", m.Size(),
		"copy", copied.Sub(start), "hash", hashed.Sub(copied), "upload", time.Since(hashed))
	e, err := l.app.AppendSnapshot(ctx, m.Name, info.Seq)
	if err != nil {
		return err
	}
	if e.StreamSeq != info.Cursor {
		return fmt.Errorf("replication: snapshot entry landed at %d, expected %d", e.StreamSeq, info.Cursor)
	}
	l.mu.Lock()
	l.pos, l.dealt = l.app.Position(), l.cap.Stats().Txns
	l.resets++
	l.signalLocked()
	l.mu.Unlock()
	r.event(EventSnapshot, fmt.Sprintf("reset at transaction %d (%d bytes)", info.Seq, info.Size()), l.epoch, nil)
	return nil
}

// purgeTo is where retention may cut the log given the oldest snapshot
// kept: everything a standby restored from it does not read. A reset
// snapshot's own entry stays (it is what makes the snapshot valid, see
// latestValid); an ordinary one's is dropped whole, so no orphan part of
// a multi-part entry is left at the log's start.
func purgeTo(oldest snapstore.Meta) uint64 {
	if oldest.Reset {
		return oldest.Cursor
	}
	return oldest.Cursor + 1
}

// describe reads a copy's page size, page count and SHA-256.
func describe(path string, pos walfile.Position) (apply.SnapshotInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return apply.SnapshotInfo{}, err
	}
	defer f.Close()
	var hdr [100]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return apply.SnapshotInfo{}, fmt.Errorf("replication: snapshot header: %w", err)
	}
	ps := uint32(hdr[16])<<8 | uint32(hdr[17])
	if ps == 1 {
		ps = 65536
	}
	fi, err := f.Stat()
	if err != nil {
		return apply.SnapshotInfo{}, err
	}
	if ps == 0 || fi.Size()%int64(ps) != 0 {
		return apply.SnapshotInfo{}, fmt.Errorf("replication: snapshot of %d bytes, page size %d", fi.Size(), ps)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return apply.SnapshotInfo{}, err
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return apply.SnapshotInfo{}, err
	}
	info := apply.SnapshotInfo{Position: pos, PageSize: ps, PageCount: uint32(fi.Size() / int64(ps))}
	copy(info.SHA256[:], h.Sum(nil))
	return info, nil
}

// RequestSnapshot asks the app's leader for a snapshot now and waits
// until it is stored (for `gcl snapshot create`). ErrNoLeader: nobody
// leads the app.
func RequestSnapshot(ctx context.Context, nc *nats.Conn, subject string) (snapstore.Meta, error) {
	return askLeader(ctx, nc, subject+".snapshot", "snapshot", []byte("0"))
}

// askLeader sends a request only the leader answers, with a snapshot (or
// the reason it has none) for a reply.
func askLeader(ctx context.Context, nc *nats.Conn, subject, what string, req []byte) (snapstore.Meta, error) {
	msg, err := nc.RequestWithContext(ctx, subject, req)
	if errors.Is(err, nats.ErrNoResponders) {
		return snapstore.Meta{}, ErrNoLeader
	}
	if err != nil {
		return snapstore.Meta{}, fmt.Errorf("replication: %s request: %w", what, err)
	}
	var reply snapshotReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return snapstore.Meta{}, fmt.Errorf("replication: %s reply: %w", what, err)
	}
	if reply.Error != "" {
		return snapstore.Meta{}, fmt.Errorf("replication: the leader's %s failed: %s", what, reply.Error)
	}
	return reply.Meta, nil
}

// ErrNoLeader: no node leads the app's replication.
var ErrNoLeader = errors.New("replication: no leader")

// errRestoring ends a leader's shipping when an operator restores a
// snapshot into the cluster: what the app writes after it is discarded.
var errRestoring = errors.New("replication: a snapshot is being restored into the cluster")

// RestoreCluster makes snapshot name the app's database cluster-wide: on
// the leader, it stops shipping, appends a snapshot entry for a copy of
// name re-tagged as the log's next state, and steps down (Config.Failed),
// so that the next leader promotes a replica restored from it and every
// standby follows. Whatever the app wrote after shipping stopped is
// discarded; that is what restoring means. ErrNotLeader elsewhere.
func (r *Replicator) RestoreCluster(ctx context.Context, name string) (snapstore.Meta, error) {
	r.mu.Lock()
	l := r.leader
	r.mu.Unlock()
	if l == nil {
		return snapstore.Meta{}, ErrNotLeader
	}
	src, body, err := r.cfg.Snapshots.Get(ctx, name)
	if err != nil {
		return snapstore.Meta{}, err
	}
	tmp := filepath.Join(r.cfg.Dir, fmt.Sprintf("restore-%d.tmp", time.Now().UnixNano()))
	defer os.Remove(tmp)
	err = copyToFile(tmp, body)
	body.Close()
	if err != nil {
		return snapstore.Meta{}, err
	}
	// Stop shipping: from here the log ends with the snapshot entry. The
	// step-down comes after the entry is in (a successor fencing first
	// would refuse it).
	l.halt()
	l.mu.Lock()
	if l.err == nil {
		l.err = errRestoring
		close(l.dead)
		l.signalLocked()
	}
	l.mu.Unlock()
	defer func() {
		if r.cfg.Failed != nil {
			r.cfg.Failed(l.epoch, errRestoring)
		}
	}()
	at := l.app.Position()
	info := src.SnapshotInfo
	// The next leader's WAL is a new one: no position to chain to, the
	// log's seq vouches (see apply's "The chain").
	info.Position = walfile.Position{}
	info.Epoch, info.Seq, info.Cursor = l.epoch, at.Seq+1, at.StreamSeq+1
	m, err := r.cfg.Snapshots.Put(ctx, tmp, snapstore.Meta{SnapshotInfo: info, Bytes: at.Bytes, Reset: true, Node: r.cfg.Node})
	if err != nil {
		return snapstore.Meta{}, fmt.Errorf("replication: restore: store the re-tagged copy: %w", err)
	}
	e, err := l.app.AppendSnapshot(ctx, m.Name, info.Seq)
	if err != nil {
		return snapstore.Meta{}, fmt.Errorf("replication: restore: append its entry (the log may have lost an in-flight entry; try again): %w", err)
	}
	if e.StreamSeq != info.Cursor {
		return snapstore.Meta{}, fmt.Errorf("replication: restore: entry landed at %d, expected %d", e.StreamSeq, info.Cursor)
	}
	r.log.Warn("replication: snapshot restored into the cluster; stepping down", "snapshot", name, "as", m.Name, "seq", m.Seq)
	r.event(EventRestored, fmt.Sprintf("%s restored as transaction %d", name, m.Seq), l.epoch, nil)
	return m, nil
}

// EventRestored: an operator restored a snapshot into the cluster.
const EventRestored = "replication.restored"

// halt stops shipping and confirming, keeping the capture open.
func (l *leader) halt() {
	l.cancel()
	<-l.done
	<-l.confirmed
	l.bg.Wait()
}

func copyToFile(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(f, r, make([]byte, 1<<20)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// answerRestore serves RequestRestore, then steps down.
func (r *Replicator) answerRestore(m *nats.Msg) {
	var req struct{ Name string }
	reply := snapshotReply{}
	if err := json.Unmarshal(m.Data, &req); err != nil || req.Name == "" {
		reply.Error = "bad request: want {\"name\": SNAPSHOT}"
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		meta, err := r.RestoreCluster(ctx, req.Name)
		cancel()
		reply.Meta = meta
		if err != nil {
			reply.Error = err.Error()
		}
	}
	b, _ := json.Marshal(reply)
	_ = m.Respond(b)
}

// RestoreSubject is where the leader takes restore requests.
func RestoreSubject(subject string) string { return subject + ".restore" }

// RequestRestore asks the app's leader to restore snapshot name into the
// cluster (RestoreCluster) and returns the re-tagged snapshot.
func RequestRestore(ctx context.Context, nc *nats.Conn, subject, name string) (snapstore.Meta, error) {
	b, _ := json.Marshal(map[string]string{"name": name})
	return askLeader(ctx, nc, RestoreSubject(subject), "restore", b)
}
