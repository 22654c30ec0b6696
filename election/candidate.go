package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/state"
)

// Why a term ended.
var (
	ErrLeaseLost    = errors.New("lease lost: someone else holds it")
	ErrDeadline     = errors.New("lease deadline passed without a successful renewal")
	ErrDisconnected = errors.New("connection to NATS lost")
	ErrSteppedDown  = errors.New("stepped down")
	ErrIneligible   = errors.New("no longer eligible to lead")
	ErrNotLeader    = errors.New("not the leader")
)

// Record is the value of a lease.
type Record struct {
	Holder   string `json:"holder"`
	Instance string `json:"instance"` // one per process: tells a restarted node from its predecessor
	// Epoch is the revision of the write that started this term. The first
	// write of a term cannot know its own revision, so it carries 0 and the
	// epoch is that write's revision.
	Epoch uint64 `json:"epoch,omitempty"`
	TTLms int64  `json:"ttl_ms"`
}

// Liveness gives standbys an early sign that a holder's process is gone.
type Liveness interface {
	// Gone returns a channel that is closed once the given process of node
	// is known to be gone, and a function to stop watching.
	Gone(node, instance string) (<-chan struct{}, func())
}

// Config configures a Candidate for one lease key.
type Config struct {
	JS       jetstream.JetStream
	KV       jetstream.KeyValue // a bucket made with state.EnsureLeaseKV
	Key      string
	Node     string
	Instance string
	Timing   Timing
	Liveness Liveness // optional: enables the fast path
	Logger   *slog.Logger
	// OnRenew, if set, is told how long each successful renewal took
	// (for metrics). It must not block.
	OnRenew func(time.Duration)
}

// Term is one period of leadership. It ends when the lease is lost, the
// deadline passes, the connection drops, or the holder steps down.
type Term struct {
	Epoch uint64

	done     chan struct{}
	endOnce  sync.Once
	mu       sync.Mutex
	err      error
	deadline time.Time
}

// Done is closed when the holder must stop acting.
func (t *Term) Done() <-chan struct{} { return t.done }

// Err says why the term ended; nil while it lasts.
func (t *Term) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Deadline is the local time by which the holder must have stopped acting
// unless it renews again.
func (t *Term) Deadline() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.deadline
}

func (t *Term) end(err error) {
	t.endOnce.Do(func() {
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
		close(t.done)
	})
}

// Graceful reports whether the holder still held the lease when the term
// ended, so that it should release it for a successor.
func Graceful(err error) bool {
	return errors.Is(err, ErrSteppedDown) || errors.Is(err, ErrIneligible) || errors.Is(err, context.Canceled)
}

// Candidate campaigns for one lease and serves terms while it holds it.
type Candidate struct {
	cfg  Config
	ttl  time.Duration
	wake chan struct{} // eligibility or hold-off changed
	log  *slog.Logger

	mu           sync.Mutex
	term         *Term
	leader       Record // last holder seen; empty when the lease is free
	eligible     bool
	holdOffUntil time.Time
	released     chan struct{} // closed after a graceful term released the lease

	// unknownSince is the send time of the first lease attempt since the
	// lease last changed hands that may still land (sent, and not answered
	// with a success or a failed compare-and-set). Owned by the Run
	// goroutine.
	unknownSince time.Time
}

// New checks the configuration and returns a Candidate.
func New(cfg Config) (*Candidate, error) {
	cfg.Timing = cfg.Timing.WithDefaults()
	if err := cfg.Timing.Validate(); err != nil {
		return nil, err
	}
	if cfg.JS == nil || cfg.KV == nil || cfg.Key == "" || cfg.Node == "" || cfg.Instance == "" {
		return nil, errors.New("election: JS, KV, Key, Node and Instance are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Candidate{
		cfg:      cfg,
		ttl:      cfg.Timing.TTL,
		wake:     make(chan struct{}, 1),
		log:      cfg.Logger.With("lease", cfg.Key),
		eligible: true,
	}, nil
}

// Leader returns the current holder as last seen, and whether there is one.
func (c *Candidate) Leader() (Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader, c.leader.Holder != ""
}

// Term returns the current term, or nil when not leading.
func (c *Candidate) Term() *Term {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.term
}

// SetEligible stops (false) or resumes (true) campaigning. A holder that
// becomes ineligible steps down gracefully.
func (c *Candidate) SetEligible(ok bool) {
	c.mu.Lock()
	c.eligible = ok
	term := c.term
	c.mu.Unlock()
	if !ok && term != nil {
		term.end(ErrIneligible)
	}
	c.poke()
}

// Disconnected ends the current term at once: a holder that cannot reach
// NATS cannot prove it holds the lease, and standbys may learn of the lost
// connection (probes get no responders) before the TTL runs out.
func (c *Candidate) Disconnected() {
	if t := c.Term(); t != nil {
		t.end(ErrDisconnected)
	}
}

// StepDown ends the current term, waits until the holder has stopped and
// released the lease, and keeps this candidate from taking it straight
// back. Standbys watch the lease and take over at once.
func (c *Candidate) StepDown(ctx context.Context) error {
	c.mu.Lock()
	term, released := c.term, c.released
	c.mu.Unlock()
	if term == nil {
		return ErrNotLeader
	}
	term.end(ErrSteppedDown)
	select {
	case <-released:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Candidate) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run campaigns until ctx ends. Each time the lease is won, serve is called
// with the term; serve must stop acting and return once term.Done() is
// closed. The lease is renewed while serve runs (also while it stops after
// a step-down, so nobody takes over a half-stopped holder) and released
// after it returns if the term ended gracefully.
func (c *Candidate) Run(ctx context.Context, serve func(*Term)) error {
	for {
		term, rev, err := c.campaign(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// NATS is unreachable or the watch broke: we hold nothing, so
			// waiting and watching again is always safe.
			c.log.Warn("campaign interrupted; retrying", "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(c.cfg.Timing.RenewInterval):
			}
			continue
		}
		c.log.Info("won the lease", "epoch", term.Epoch, "deadline_in", time.Until(term.Deadline()).Round(time.Millisecond))
		c.lead(ctx, term, rev, serve)
	}
}

// observed is the lease as a standby last saw it.
type observed struct {
	rev     uint64
	present bool // a live record (not a delete or expiry marker)
	rec     Record
	at      time.Time
}

func (c *Candidate) record(epoch uint64) []byte {
	b, _ := json.Marshal(Record{Holder: c.cfg.Node, Instance: c.cfg.Instance, Epoch: epoch, TTLms: c.ttl.Milliseconds()})
	return b
}

// campaign watches the lease and returns once this candidate holds it.
func (c *Candidate) campaign(ctx context.Context) (*Term, uint64, error) {
	w, err := c.cfg.KV.Watch(ctx, c.cfg.Key)
	if err != nil {
		return nil, 0, fmt.Errorf("watch lease %s: %w", c.cfg.Key, err)
	}
	defer w.Stop()

	var (
		cur         observed
		initialDone bool
		takeover    = time.NewTimer(time.Hour)
		graceTimer  = time.NewTimer(time.Hour)
		gone        <-chan struct{}
		stopGone    = func() {}
		retry       = time.NewTimer(time.Hour)
		// retryForced: the last forced attempt (a takeover of a holder
		// proved gone or expired) had an unknown outcome, so the retry
		// must force again: the record it saw is still there.
		retryForced bool
	)
	takeover.Stop()
	graceTimer.Stop()
	retry.Stop()
	defer func() { stopGone() }()
	// recheck reads the lease once per TTL. The watch is the fast way to
	// learn of changes, but it can miss what leaves no message (a record
	// the server expired) and can stall while its consumer is re-created
	// after a stream-leader change; a candidate must never wait in
	// silence for an event that will not come.
	recheck := time.NewTicker(c.ttl)
	defer recheck.Stop()
	var readAhead uint64 // revision the last recheck read

	// attempt tries to take the lease when it looks free, or by CAS on the
	// revision we saw when its holder is provably gone. It sends the
	// request and returns; the answer arrives on answers. Like renewals,
	// attempts are never abandoned early: one sent while the stream elects
	// a leader may land after the election, and dropping its answer would
	// leave us holding a lease we do not know we hold. While one goes
	// unanswered for AttemptTimeout, retry sends another beside it; all
	// compare-and-set on the same state, so at most one lands.
	answers := make(chan attemptAnswer, maxAttemptsInFlight)
	actx, cancelAttempts := context.WithCancel(ctx)
	defer cancelAttempts()
	inflight := 0
	attempt := func(force bool) {
		c.mu.Lock()
		eligible, holdOff := c.eligible, c.holdOffUntil
		c.mu.Unlock()
		if !eligible || !initialDone {
			return
		}
		if d := time.Until(holdOff); d > 0 {
			retry.Reset(d)
			return
		}
		if cur.present && !force {
			return
		}
		retryForced = force
		retry.Reset(c.cfg.Timing.AttemptTimeout())
		if inflight >= maxAttemptsInFlight {
			return
		}
		inflight++
		sent, present, expect := time.Now(), cur.present, cur.rev
		if c.unknownSince.IsZero() {
			// Until its answer says otherwise, it may land.
			c.unknownSince = sent
		}
		go func() {
			rctx, cancel := context.WithTimeout(actx, c.ttl)
			defer cancel()
			rev, err := c.takeOnce(rctx, present, expect)
			answers <- attemptAnswer{sent: sent, rev: rev, err: err}
		}()
	}

	for {
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, 0, fmt.Errorf("lease watch %s closed", c.cfg.Key)
			}
			if e == nil {
				initialDone = true
			} else {
				retryForced = false
				takeover.Stop()
				graceTimer.Stop()
				stopGone()
				stopGone, gone = func() {}, nil
				cur = observed{rev: e.Revision(), at: time.Now()}
				if e.Operation() == jetstream.KeyValuePut {
					var rec Record
					if err := json.Unmarshal(e.Value(), &rec); err == nil && rec.Holder != "" {
						cur.present, cur.rec = true, rec
					} else {
						// An unreadable record still blocks the lease until it expires.
						cur.present, cur.rec = true, Record{Holder: "?", TTLms: c.ttl.Milliseconds()}
					}
				}
				if cur.present && cur.rec.Epoch == 0 && !c.unknownSince.IsZero() &&
					cur.rec.Holder == c.cfg.Node && cur.rec.Instance == c.cfg.Instance {
					// An attempt of ours whose answer we lost has landed:
					// the lease is ours. Count its deadline from the first
					// attempt that may have landed, no later than this one.
					sent := c.unknownSince
					c.unknownSince = time.Time{}
					if d := c.cfg.Timing.LeaseDeadline(sent); time.Until(d) > 0 {
						c.log.Info("a lease attempt whose answer was lost landed; leading", "rev", cur.rev)
						return &Term{Epoch: cur.rev, done: make(chan struct{}), deadline: d}, cur.rev, nil
					}
					c.log.Warn("a lease attempt whose answer was lost landed too late to lead; releasing it", "rev", cur.rev)
					go c.release(cur.rev)
				}
				c.unknownSince = time.Time{}
				c.observe(cur)
				if cur.present {
					ttl := time.Duration(cur.rec.TTLms) * time.Millisecond
					if ttl <= 0 {
						ttl = c.ttl
					}
					takeover.Reset(time.Until(TakeoverAt(cur.at, ttl)))
					self := cur.rec.Holder == c.cfg.Node && cur.rec.Instance == c.cfg.Instance
					if c.cfg.Liveness != nil && c.cfg.Timing.ProbeInterval > 0 && !self && cur.rec.Holder != "?" {
						gone, stopGone = c.cfg.Liveness.Gone(cur.rec.Holder, cur.rec.Instance)
					}
				}
			}
			attempt(false)
		case a := <-answers:
			inflight--
			switch {
			case a.err == nil:
				// Had an earlier attempt landed, this one would have failed.
				c.unknownSince = time.Time{}
				d := c.cfg.Timing.LeaseDeadline(a.sent)
				if time.Until(d) <= 0 {
					// Answered too late to lead: give the lease back
					// rather than make everyone wait out its TTL.
					c.log.Warn("won the lease too late to lead; releasing it", "rev", a.rev)
					go c.release(a.rev)
					continue
				}
				return &Term{Epoch: a.rev, done: make(chan struct{}), deadline: d}, a.rev, nil
			case state.IsCASFailure(a.err):
				// Someone else's write, or a sibling attempt of ours that
				// landed and whose answer is late: the leader knows which,
				// before the watch does.
				if !c.unknownSince.IsZero() {
					if rev, ok := c.ownFirstWrite(ctx, cur.rev); ok {
						sent := c.unknownSince
						c.unknownSince = time.Time{}
						if d := c.cfg.Timing.LeaseDeadline(sent); time.Until(d) > 0 {
							return &Term{Epoch: rev, done: make(chan struct{}), deadline: d}, rev, nil
						}
						c.log.Warn("won the lease too late to lead; releasing it", "rev", rev)
						go c.release(rev)
					}
				}
				// Another attempt on what we saw would fail the same way.
				if inflight == 0 {
					retry.Stop()
				}
			default:
				// Unknown outcome or NATS trouble (a stream leader moving):
				// it may still land (see unknownSince); the retry timer
				// sends another.
				c.log.Debug("lease attempt failed", "err", a.err)
				retry.Reset(c.cfg.Timing.RetryInterval())
			}
		case <-gone:
			// The holder's connection is gone. Give a holder that is alive but
			// lost its connection StopBudget to notice and stop, then take over.
			gone = nil
			graceTimer.Reset(c.cfg.Timing.StopBudget + c.cfg.Timing.ClockMargin)
		case <-graceTimer.C:
			c.log.Info("lease holder is gone, taking over", "holder", cur.rec.Holder, "rev", cur.rev)
			attempt(true)
		case <-takeover.C:
			c.log.Info("lease not renewed within TTL, taking over", "holder", cur.rec.Holder, "rev", cur.rev)
			attempt(true)
		case <-retry.C:
			attempt(retryForced)
		case <-c.wake:
			attempt(false)
		case <-recheck.C:
			if !initialDone {
				continue
			}
			gctx, cancel := context.WithTimeout(ctx, c.cfg.Timing.AttemptTimeout())
			e, err := c.cfg.KV.Get(gctx, c.cfg.Key)
			cancel()
			switch {
			case (errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)) && cur.present:
				c.log.Info("lease record is gone without an event; campaigning", "holder", cur.rec.Holder, "rev", cur.rev)
				takeover.Stop()
				graceTimer.Stop()
				stopGone()
				stopGone, gone = func() {}, nil
				cur = observed{rev: cur.rev, at: time.Now()}
				c.observe(cur)
				attempt(false)
			case err == nil:
				// A read may run ahead of the watch for a moment; a watch
				// still behind what the previous recheck read has stalled.
				if cur.rev < readAhead {
					return nil, 0, fmt.Errorf("lease watch %s stalled: revision %d was read a recheck ago, the watch is at %d", c.cfg.Key, readAhead, cur.rev)
				}
				readAhead = e.Revision()
			}
		}
	}
}

// maxAttemptsInFlight bounds the takeover attempts a candidate has sent
// and not yet had answered.
const maxAttemptsInFlight = 8

// attemptAnswer is the outcome of one takeover attempt.
type attemptAnswer struct {
	sent time.Time
	rev  uint64
	err  error
}

// takeOnce writes our record as the lease's first write of a term: by
// compare-and-set on the revision seen when the lease is present, by
// create when it is free.
func (c *Candidate) takeOnce(ctx context.Context, present bool, seen uint64) (uint64, error) {
	if !present {
		return c.cfg.KV.Create(ctx, c.cfg.Key, c.record(0), jetstream.KeyTTL(state.ServerTTL(c.ttl)))
	}
	rev, err := state.PutCAS(ctx, c.cfg.JS, c.bucket(), c.cfg.Key, c.record(0), seen, c.ttl)
	if !state.IsCASFailure(err) {
		return rev, err
	}
	// The record may have expired on the server, which leaves no marker in
	// a lease bucket (see state.EnsureLeaseKV), so no watcher hears of it:
	// an empty key is free to create.
	_, gerr := c.cfg.KV.Get(ctx, c.cfg.Key)
	switch {
	case errors.Is(gerr, jetstream.ErrKeyNotFound):
		return c.cfg.KV.Create(ctx, c.cfg.Key, c.record(0), jetstream.KeyTTL(state.ServerTTL(c.ttl)))
	case gerr != nil:
		// Neither "someone holds it" nor "free": find out again.
		return 0, gerr
	}
	return 0, err
}

// release deletes the lease at rev, if it is still there: a lease we won
// but cannot lead with.
func (c *Candidate) release(rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timing.TTL/2)
	defer cancel()
	_ = c.cfg.KV.Delete(ctx, c.cfg.Key, jetstream.LastRevision(rev))
}

func (c *Candidate) observe(o observed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o.present {
		c.leader = o.rec
		if o.rec.Holder != c.cfg.Node || o.rec.Instance != c.cfg.Instance {
			// Someone else leads now: a step-down hold-off has done its job.
			c.holdOffUntil = time.Time{}
		}
	} else {
		c.leader = Record{}
	}
}

func (c *Candidate) bucket() string { return c.cfg.KV.Bucket() }

// lead serves one term: it renews the lease in the background, calls serve,
// and releases the lease afterwards when the term ended gracefully.
func (c *Candidate) lead(ctx context.Context, term *Term, rev uint64, serve func(*Term)) {
	released := make(chan struct{})
	c.mu.Lock()
	c.term, c.released = term, released
	c.leader = Record{Holder: c.cfg.Node, Instance: c.cfg.Instance, Epoch: term.Epoch, TTLms: c.ttl.Milliseconds()}
	c.mu.Unlock()

	stopKeeper := make(chan struct{})
	keeperDone := make(chan uint64)
	go func() { keeperDone <- c.keep(term, rev, stopKeeper) }()
	// A cancelled ctx ends the term like a step-down: the platform is
	// shutting down and hands over.
	stopWatch := context.AfterFunc(ctx, func() { term.end(context.Canceled) })

	serve(term)
	stopWatch()
	term.end(ErrSteppedDown) // serve returned on its own: treat as a step-down
	close(stopKeeper)
	lastRev := <-keeperDone

	if Graceful(term.Err()) && lastRev != 0 {
		rctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timing.TTL/2)
		err := c.cfg.KV.Delete(rctx, c.cfg.Key, jetstream.LastRevision(lastRev))
		cancel()
		if err != nil {
			c.log.Warn("could not release lease; it will expire", "err", err)
		}
	}
	c.mu.Lock()
	c.term = nil
	if c.leader.Instance == c.cfg.Instance {
		c.leader = Record{}
	}
	if errors.Is(term.Err(), ErrSteppedDown) {
		// Leave the lease to a standby; take it back only if none comes.
		c.holdOffUntil = time.Now().Add(c.ttl)
	}
	c.mu.Unlock()
	close(released)
}

// renewal is the answer to one renewal attempt.
type renewal struct {
	expect uint64    // the revision the attempt compared against
	sent   time.Time // when it was sent
	rev    uint64
	err    error
}

// keep renews the lease until stop is closed or the lease is lost, and
// returns the last revision we wrote (0 if the lease is no longer ours).
//
// Attempts are pipelined: one goes out every RenewInterval, and while one
// has gone unanswered for AttemptTimeout (or failed) another goes out,
// without giving up on the first. A request sent while the stream has no
// leader is dropped, not refused: waiting on it alone would miss the next
// leader, and giving up on a request that is merely slow (a busy machine)
// would throw away a renewal about to land.
//
// Attempts are compare-and-sets on the revision we hold, so at most one of
// them lands; its answer gives the send time our deadline counts from. A
// failed compare-and-set may be the doing of our own sibling that landed
// (its answer still on the way, or lost): we read the record back, and
// when it is ours (this instance, this epoch, a newer revision) we count
// the deadline from the *first* attempt on our revision, which is no later
// than the one that landed, so the deadline stays on the safe side.
func (c *Candidate) keep(term *Term, rev uint64, stop <-chan struct{}) uint64 {
	tm := c.cfg.Timing
	lastSent := term.Deadline().Add(-(tm.TTL - tm.ClockMargin - tm.StopBudget))
	value := c.record(term.Epoch)
	answers := make(chan renewal)
	ctx, abandon := context.WithCancel(context.Background())
	var inflight sync.WaitGroup
	defer func() {
		abandon()
		inflight.Wait()
	}()
	var firstSent time.Time // first attempt on rev: the earliest that may land
	send := func() {
		sent := time.Now()
		if firstSent.IsZero() {
			firstSent = sent
		}
		expect := rev
		actx, cancel := context.WithDeadline(ctx, tm.LeaseDeadline(lastSent))
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer cancel()
			newRev, err := state.PutCAS(actx, c.cfg.JS, c.bucket(), c.cfg.Key, value, expect, c.ttl)
			select {
			case answers <- renewal{expect: expect, sent: sent, rev: newRev, err: err}:
			case <-ctx.Done():
			}
		}()
	}
	next := time.NewTimer(time.Until(tm.NextRenew(lastSent, time.Now(), false)))
	defer next.Stop()
	deadline := time.NewTimer(time.Until(term.Deadline()))
	defer deadline.Stop()
	renewed := func(newRev uint64, sent time.Time) {
		rev, lastSent, firstSent = newRev, sent, time.Time{}
		d := tm.LeaseDeadline(sent)
		term.mu.Lock()
		term.deadline = d
		term.mu.Unlock()
		deadline.Reset(time.Until(d))
		next.Reset(time.Until(tm.NextRenew(lastSent, time.Now(), false)))
	}
	for {
		select {
		case <-stop:
			return rev
		case <-deadline.C:
			term.end(ErrDeadline)
			return 0
		case <-next.C:
			send()
			// Unless it is answered first, another goes out after a while.
			next.Reset(tm.AttemptTimeout())
		case a := <-answers:
			if a.expect != rev {
				// An attempt on a revision we renewed past: it can only
				// have failed (one attempt per revision lands).
				continue
			}
			switch {
			case a.err == nil:
				if c.cfg.OnRenew != nil {
					c.cfg.OnRenew(time.Since(a.sent))
				}
				renewed(a.rev, a.sent)
			case state.IsCASFailure(a.err):
				landed, verdict := c.ownWrite(ctx, term.Epoch, rev)
				switch verdict {
				case writeOurs:
					c.log.Info("a lease renewal landed before its answer; continuing from it", "rev", landed)
					renewed(landed, firstSent)
				case writeUnknown:
					// Cannot tell yet; a later attempt will, and the
					// deadline bounds us meanwhile.
					next.Reset(tm.RetryInterval())
				case writeTheirs:
					term.end(ErrLeaseLost)
					return 0
				}
			default:
				// A failed renewal is unknown, not lost: retry until the deadline.
				c.log.Warn("lease renewal failed; retrying", "err", a.err, "deadline_in", time.Until(tm.LeaseDeadline(lastSent)).Round(time.Millisecond))
				next.Reset(tm.RetryInterval())
			}
		}
	}
}

// ownFirstWrite asks the stream's leader whether the lease's last write,
// after revision seen, is a first write of ours (a takeover attempt of ours
// landed), and returns its revision.
func (c *Candidate) ownFirstWrite(ctx context.Context, seen uint64) (uint64, bool) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timing.AttemptTimeout())
	defer cancel()
	seq, data, found, err := state.LastFromLeader(rctx, c.cfg.JS, "KV_"+c.bucket(), "$KV."+c.bucket()+"."+c.cfg.Key)
	if err != nil || !found || seq <= seen {
		return 0, false
	}
	var rec Record
	if json.Unmarshal(data, &rec) != nil || rec.Holder != c.cfg.Node || rec.Instance != c.cfg.Instance || rec.Epoch != 0 {
		return 0, false
	}
	return seq, true
}

// What a read-back says of the last write to a lease.
type writeVerdict int

const (
	writeUnknown writeVerdict = iota // the read failed
	writeOurs                        // a renewal of ours landed
	writeTheirs                      // someone else wrote: the lease is lost
)

// ownWrite reads the lease after a failed compare-and-set on revision
// after, and says whether a renewal of ours (this instance, this epoch)
// landed since. It asks the stream's leader: a replica that is behind (a
// direct get may be answered by any) would show the past, and the point is
// to know at once that our write landed although its answer is late.
func (c *Candidate) ownWrite(ctx context.Context, epoch, after uint64) (uint64, writeVerdict) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timing.AttemptTimeout())
	defer cancel()
	seq, data, found, err := state.LastFromLeader(rctx, c.cfg.JS, "KV_"+c.bucket(), "$KV."+c.bucket()+"."+c.cfg.Key)
	switch {
	case err != nil:
		return 0, writeUnknown
	case !found:
		return 0, writeTheirs // expired: our deadline passed with it
	case seq <= after:
		// The leader has not applied what made our write fail: ask again.
		return 0, writeUnknown
	}
	var rec Record
	if json.Unmarshal(data, &rec) == nil && rec.Holder == c.cfg.Node && rec.Instance == c.cfg.Instance && rec.Epoch == epoch {
		return seq, writeOurs
	}
	return 0, writeTheirs
}
