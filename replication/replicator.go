//go:build linux

// Package replication keeps an app's SQLite database replicated from its
// leader to its standbys through the app's log in JetStream (wallog), with
// snapshots in an object store (snapstore). A Replicator runs on every node
// that may hold the app:
//
//   - as a standby (Run), it follows the log into its replica
//     (apply.Replica), bootstrapping or resyncing from a snapshot when the
//     log cannot be applied from where it stands (a gap, a corrupt entry,
//     a log purged past it);
//   - as the leader (Promote), it first fences the log (wallog.Fence) so
//     that no older leader can append again, applies the log to its end,
//     checks the replica and makes it the app's database, atomically,
//     before anything of the app starts; then it captures the database's
//     WAL (capture) and ships every committed transaction;
//   - on the way down (Demote), gracefully, it ships the last frames and
//     waits until a standby has applied them, so a handoff loses nothing;
//     otherwise it stops at once, and on its return it discards what never
//     reached the log by following the log again from its replica.
//
// The core rule: a transaction exists for the cluster once it is in the
// log. The leader's own file may hold more (written but not shipped when it
// crashed); that is discarded, never merged.
package replication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/replication/apply"
	"github.com/ozanturksever/go-cluster/replication/snapstore"
	"github.com/ozanturksever/go-cluster/replication/wallog"
	"github.com/ozanturksever/go-cluster/state"
)

// Config is one app's replication on one node.
type Config struct {
	App, Node string
	// Path is the app's database; Dir holds this node's replica of it.
	Path, Dir string
	Log       *wallog.Log
	Snapshots *snapstore.Store
	// NC carries the requests between leader and standbys on
	// Subject.*: snapshot requests and applied-position waits.
	NC      *nats.Conn
	Subject string
	// SnapshotInterval and SnapshotBytes: the leader snapshots after this
	// long, or once the log since the last snapshot holds more bytes than
	// both SnapshotBytes and the last snapshot, whichever comes first (0:
	// 1 h and 256 MiB). Retain snapshots are kept (0: 2); the log is
	// purged up to the oldest kept.
	SnapshotInterval time.Duration
	SnapshotBytes    uint64
	Retain           int
	Logger           *slog.Logger
	// Event reports what happened, for the activity feed; Report, the
	// Status, on every change of role and at most every ReportEvery (0:
	// 1 s) while it changes.
	Event func(kind, message string, epoch uint64, err error)
	// LagAlert: a standby whose lag passes it reports EventLagging, and
	// EventCaughtUp once back under half of it (0: 1 s).
	LagAlert    time.Duration
	Report      func(Status)
	ReportEvery time.Duration
	// Applied, if set, is called on a standby after each applied batch
	// with its last entry and that entry's lag (benchmarks, metrics).
	Applied func(e wallog.Entry, lag time.Duration)
	// Failed is called (once per term) when the leader cannot go on
	// shipping: fenced by a newer leader, or the log unreachable. The
	// caller steps down.
	Failed func(epoch uint64, err error)
}

// Event kinds.
const (
	EventPromoted     = "replication.promoted"
	EventPromoteFail  = "replication.promote_failed"
	EventHandoff      = "replication.handoff"
	EventFenced       = "replication.fenced"
	EventResync       = "replication.resync"
	EventBadEntry     = "replication.bad_entry"
	EventSnapshot     = "replication.snapshot"
	EventLostWAL      = "replication.lost_continuity"
	EventShipFailed   = "replication.ship_failed"
	EventBootstrapped = "replication.bootstrapped"
	EventLagging      = "replication.lagging"
	EventCaughtUp     = "replication.caught_up"
)

// Roles.
const (
	RoleStarting  = "starting" // neither following nor leading (yet, or any more)
	RoleStandby   = "standby"
	RoleResyncing = "resyncing"
	RoleLeader    = "leader"
	RolePromoting = "promoting"
)

// Status is a node's replication state of one app.
type Status struct {
	App    string `json:"app"`
	Node   string `json:"node"`
	Role   string `json:"role"`
	Epoch  uint64 `json:"epoch"`
	Seq    uint64 `json:"seq"`    // last transaction applied (standby) or shipped (leader)
	Cursor uint64 `json:"cursor"` // log stream sequence after it
	Bytes  uint64 `json:"bytes"`  // log bytes up to it
	// LagMS is, on a standby, the time from the leader's capture of the
	// last applied transaction to its apply, in milliseconds (clocks of
	// two nodes: as good as their sync); Behind is the log messages not
	// applied yet when it was delivered.
	LagMS   float64   `json:"lag_ms"`
	Behind  uint64    `json:"behind"`
	Applied int64     `json:"applied_total"` // transactions applied (standby) or shipped (leader) since start
	Resyncs int64     `json:"resyncs"`
	Error   string    `json:"error,omitempty"`
	Updated time.Time `json:"updated"`
}

// Replicator is one app's replication on this node.
type Replicator struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	rep      *apply.Replica // nil while promoted and after Close
	status   Status
	applied  chan struct{} // closed and replaced when the replica advances
	follow   context.CancelFunc
	followed chan struct{}
	leader   *leader
	closed   bool
	running  bool // within Run: follow when not leading
	lastRep  time.Time
	// lastApplied is when the replica last advanced.
	lastApplied time.Time
	subs        []*nats.Subscription
	waitSub     *nats.Subscription // while following
	// processed is the last log stream sequence read and dealt with
	// (applied, or an entry with nothing to apply); the replica's cursor
	// moves only with what it applied.
	processed uint64
	lagging   bool   // an EventLagging episode is open
	maxEpoch  uint64 // the highest epoch of any entry read
}

// New opens this node's replica of the app (creating an empty one).
func New(cfg Config) (*Replicator, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SnapshotInterval <= 0 {
		cfg.SnapshotInterval = time.Hour
	}
	if cfg.SnapshotBytes == 0 {
		cfg.SnapshotBytes = 256 << 20
	}
	if cfg.Retain <= 0 {
		cfg.Retain = 2
	}
	if cfg.LagAlert <= 0 {
		cfg.LagAlert = time.Second
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = time.Second
	}
	rep, err := apply.OpenReplica(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("replication: %s: open replica: %w", cfg.App, err)
	}
	r := &Replicator{
		cfg: cfg, log: cfg.Logger.With("app", cfg.App), rep: rep, applied: make(chan struct{}),
	}
	a := rep.Applied()
	r.status = Status{App: cfg.App, Node: cfg.Node, Role: RoleStarting, Epoch: a.Epoch, Seq: a.Seq, Cursor: a.Cursor}
	if err := r.serve(); err != nil {
		rep.Close()
		return nil, err
	}
	return r, nil
}

// IntegritySubject is where every node of the app answers an integrity
// request with its IntegrityReport (request-many: one reply per node).
func (r *Replicator) IntegritySubject() string { return IntegritySubject(r.cfg.Subject) }

// IntegritySubject is the integrity request subject for an app's
// replication subject.
func IntegritySubject(subject string) string { return subject + ".integrity" }

// Subjects under Config.Subject.
func (r *Replicator) snapshotSubject() string { return r.cfg.Subject + ".snapshot" }
func (r *Replicator) waitSubject() string     { return r.cfg.Subject + ".applied" }

// serve answers the requests standbys and leaders make of each other.
func (r *Replicator) serve() error {
	integ, err := r.cfg.NC.Subscribe(r.IntegritySubject(), func(m *nats.Msg) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			b, _ := json.Marshal(r.Integrity(ctx))
			_ = m.Respond(b)
		}()
	})
	if err != nil {
		return fmt.Errorf("replication: subscribe: %w", err)
	}
	r.subs = []*nats.Subscription{integ}
	return nil
}

// Status returns this node's replication state.
func (r *Replicator) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// update changes the status under r.mu and reports it when the role
// changed or ReportEvery passed.
func (r *Replicator) updateLocked(fn func(*Status)) {
	before := r.status.Role
	fn(&r.status)
	r.status.Updated = time.Now()
	if r.cfg.Report != nil && (before != r.status.Role || time.Since(r.lastRep) >= r.cfg.ReportEvery) {
		r.lastRep = r.status.Updated
		r.cfg.Report(r.status)
	}
}

func (r *Replicator) update(fn func(*Status)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updateLocked(fn)
}

// Report publishes the current status now (a heartbeat for the caller's
// status record).
func (r *Replicator) Report() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.status.Role != RoleLeader && r.status.Behind == 0 && now.Sub(r.lastApplied) > time.Second {
		// Caught up and nothing new for a while: no lag now, whatever
		// the last transaction's was.
		r.status.LagMS = 0
	}
	r.status.Updated = now
	if r.cfg.Report != nil {
		r.lastRep = now
		r.cfg.Report(r.status)
	}
}

func (r *Replicator) event(kind, msg string, epoch uint64, err error) {
	if r.cfg.Event != nil {
		r.cfg.Event(kind, msg, epoch, err)
	}
}

// advancedLocked wakes whoever waits for the replica to advance.
func (r *Replicator) advancedLocked() {
	close(r.applied)
	r.applied = make(chan struct{})
}

// waitApplied waits until this standby's replica holds the log up to
// stream sequence cursor.
func (r *Replicator) waitApplied(ctx context.Context, cursor uint64) bool {
	for {
		r.mu.Lock()
		// processed covers entries with nothing to apply (a leader's epoch
		// entry), and moves only once what came before is durable.
		ok := r.rep != nil && r.leader == nil && max(r.rep.Applied().Cursor, r.processed) >= cursor
		ch := r.applied
		r.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// answerWait answers a leader's "have you applied up to cursor?" when this
// standby has, within the request's wait (at most 10 s); it stays silent
// otherwise, so the leader hears only from standbys that have.
func (r *Replicator) answerWait(m *nats.Msg) {
	var cursor uint64
	var waitMS int64
	var from string
	if _, err := fmt.Sscanf(string(m.Data), "%d %d %s", &cursor, &waitMS, &from); err != nil || from == r.cfg.Node {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(time.Duration(waitMS)*time.Millisecond, 10*time.Second))
	defer cancel()
	if r.waitApplied(ctx, cursor) {
		_ = m.Respond([]byte(r.cfg.Node))
	}
}

// Close stops following or leading (without a handoff) and closes the
// replica.
func (r *Replicator) Close() error {
	r.stopFollowing()
	r.mu.Lock()
	l := r.leader
	r.leader = nil
	r.closed = true
	rep := r.rep
	r.rep = nil
	subs := r.subs
	r.subs = nil
	r.mu.Unlock()
	for _, s := range subs {
		s.Unsubscribe()
	}
	var errs []error
	if l != nil {
		errs = append(errs, l.stop())
	}
	if rep != nil {
		errs = append(errs, rep.Close())
	}
	return errors.Join(errs...)
}

// errClosed: the Replicator is closed.
var errClosed = errors.New("replication: closed")

// ListStatuses reads the status records of app's instances from the
// platform's replication bucket.
func ListStatuses(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, app string) ([]Status, error) {
	entries, err := state.ListEntries(ctx, js, kv, app+".*")
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(entries))
	for _, e := range entries {
		var s Status
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// IntegrityReport is one node's answer to an integrity check.
type IntegrityReport struct {
	Node     string   `json:"node"`
	Role     string   `json:"role"`
	Seq      uint64   `json:"seq"`
	OK       bool     `json:"ok"`
	Messages []string `json:"messages,omitempty"` // quick_check's, or the error
	TookMS   float64  `json:"took_ms"`
}

// Integrity runs PRAGMA quick_check on this node's copy: the live
// database on the leader (through the capture's pinned read transaction),
// the replica on a standby.
func (r *Replicator) Integrity(ctx context.Context) IntegrityReport {
	start := time.Now()
	r.mu.Lock()
	l, rep := r.leader, r.rep
	st := r.status
	r.mu.Unlock()
	rpt := IntegrityReport{Node: r.cfg.Node, Role: st.Role, Seq: st.Seq}
	var msgs []string
	var err error
	switch {
	case l != nil:
		msgs, err = l.cap.Check(ctx)
	case rep != nil:
		err = rep.Check(ctx)
		var ce *apply.CheckError
		if errors.As(err, &ce) {
			msgs, err = ce.Messages, nil
		}
	default:
		err = errClosed
	}
	if err != nil {
		msgs = []string{err.Error()}
	}
	rpt.OK = err == nil && len(msgs) == 0
	rpt.Messages = msgs
	rpt.TookMS = float64(time.Since(start).Microseconds()) / 1000
	return rpt
}
