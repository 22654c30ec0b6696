// Package lock implements distributed locks on a NATS JetStream key-value
// bucket.
//
// A lock is one key in a bucket created with [BucketConfig]. Acquiring writes
// the key only if it is absent (or its last operation is a delete/expiry
// marker); holding renews it with a compare-and-set write; releasing deletes
// it with a compare-and-set on the holder's last revision. Each write carries
// a per-message TTL, so a holder that dies or is cut off loses the lock on the
// server after at most one TTL, and waiters are woken by the marker the
// server writes when the entry expires.
package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrNotHeld is returned by Unlock when this Lock does not hold the lock:
	// it was never acquired, was already released, or was lost (expired,
	// possibly taken by someone else).
	ErrNotHeld = errors.New("lock: not held")

	// ErrTTLTooShort is returned by New for a TTL under one second: the
	// server counts message TTLs in whole seconds, with one second minimum.
	ErrTTLTooShort = errors.New("lock: TTL must be at least 1s")

	// ErrAlreadyHeld is returned by TryLock and Lock when this Lock value
	// already holds the lock. Locks are not reentrant; waiting on our own
	// entry would only end when we lose it.
	ErrAlreadyHeld = errors.New("lock: already held by this Lock")
)

// DefaultTTL is the lock TTL used when Options.TTL is zero.
const DefaultTTL = 15 * time.Second

// limitMarkerTTL is how long the server keeps the marker it writes when a
// lock entry expires. Waiters are woken by the marker as soon as it is
// written, so it only has to outlive a watcher's reconnect; a minute is
// generous and costs one tiny message per lock name.
const limitMarkerTTL = time.Minute

// BucketConfig returns the configuration a locks bucket must have.
//
// The TTL is per message rather than a bucket MaxAge because each Lock
// chooses its own TTL, while a MaxAge would impose one TTL on every lock in
// the bucket and could only be changed by reconfiguring the bucket.
// LimitMarkerTTL is what allows per-message TTLs on a KV bucket, and it makes
// the server write a marker when an entry expires, which is what wakes
// blocked Lock calls. History 1 because only the current holder matters.
func BucketConfig(bucket string, replicas int) jetstream.KeyValueConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.KeyValueConfig{
		Bucket:         bucket,
		Description:    "go-cluster distributed locks",
		History:        1,
		TTL:            0,
		Replicas:       replicas,
		Storage:        jetstream.FileStorage,
		LimitMarkerTTL: limitMarkerTTL,
	}
}

// Options configure a Lock.
type Options struct {
	// TTL is how long the lock survives on the server without a renewal.
	// Zero means DefaultTTL. It is truncated to whole seconds (the server's
	// granularity) and must be at least one second.
	TTL time.Duration
	// Owner is free text stored in the lock entry (e.g. a node ID) so that
	// operators can see who holds a lock.
	Owner string
	// Logger receives renewal problems and lock losses. Nil means slog.Default().
	Logger *slog.Logger
}

// Lock is one named distributed lock. It is safe for concurrent use, and
// may be acquired again after it was released or lost.
type Lock struct {
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	name     string
	owner    string
	ttl      time.Duration
	interval time.Duration // renew cadence
	margin   time.Duration // safety margin before the server-side expiry
	log      *slog.Logger

	// opMu serialises TryLock and Unlock, which do network I/O. It is
	// separate from mu so that the renewal goroutine, Held, Token and Lost
	// never wait behind a slow request.
	opMu    sync.Mutex
	subject string         // KV put subject of the key; resolved once, under opMu
	pending *pendingCreate // acquisition whose outcome is unknown; under opMu

	mu        sync.Mutex
	held      bool
	gen       uint64 // acquisition counter; stale renewal goroutines compare it
	token     uint64 // revision of the acquiring write
	rev       uint64 // revision of our latest write, for compare-and-set
	value     []byte
	nonce     string
	deadline  time.Time // local, monotonic: after it we no longer trust that we hold the lock
	stopRenew context.CancelFunc
	renewDone chan struct{}
	lost      chan struct{}
	hooks     testHooks
}

// testHooks let the package's own tests simulate a holder that is frozen
// (GC pause, suspended VM): it neither renews nor notices its deadline.
type testHooks struct {
	pauseRenew     bool
	ignoreDeadline bool
	onWait         func() // called when Lock starts waiting on its watch
}

// pendingCreate remembers an acquisition attempt that failed without a
// server answer: the write may have landed. The next attempt reuses its
// nonce so that finding our own entry can be recognised and adopted instead
// of blocking everyone until it expires.
type pendingCreate struct {
	nonce     string
	value     []byte
	firstSend time.Time
}

// entryValue is what a lock entry holds. The nonce identifies one
// acquisition, so that after an unanswered write we can tell our own entry
// from another holder's.
type entryValue struct {
	Owner string `json:"owner,omitempty"`
	Nonce string `json:"nonce"`
}

// New returns a Lock on key name of kv. It does no I/O; the bucket is
// checked on the first acquisition. js must be the JetStream context kv was
// obtained from: renewals publish to the bucket's subject through it.
func New(js jetstream.JetStream, kv jetstream.KeyValue, name string, opts Options) (*Lock, error) {
	if js == nil || kv == nil {
		return nil, fmt.Errorf("lock %q: JetStream and KeyValue must not be nil", name)
	}
	if err := validateName(name); err != nil {
		return nil, err
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("lock %q: TTL %s: %w", name, opts.TTL, ErrTTLTooShort)
	}
	// The server truncates the TTL to whole seconds; using the truncated
	// value locally keeps the local deadline inside the server's expiry.
	ttl = ttl.Truncate(time.Second)
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Lock{
		js:       js,
		kv:       kv,
		name:     name,
		owner:    opts.Owner,
		ttl:      ttl,
		interval: ttl / 3,
		margin:   ttl / 10,
		log:      log.With("lock", name, "bucket", kv.Bucket()),
		lost:     make(chan struct{}),
	}, nil
}

func validateName(name string) error {
	if name == "" {
		return errors.New("lock name must not be empty")
	}
	for i, r := range name {
		ok := r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("lock name %q: character %q at position %d is not allowed (use letters, digits, '-' and '_')", name, r, i)
		}
	}
	return nil
}

// TryLock makes one attempt to acquire the lock. It returns false and a nil
// error when someone else holds it.
func (l *Lock) TryLock(ctx context.Context) (bool, error) {
	l.opMu.Lock()
	defer l.opMu.Unlock()

	l.mu.Lock()
	l.checkDeadlineLocked()
	if l.held {
		token := l.token
		l.mu.Unlock()
		return false, fmt.Errorf("lock %q (token %d): %w", l.name, token, ErrAlreadyHeld)
	}
	l.mu.Unlock()

	if l.subject == "" {
		subject, err := l.resolveSubject(ctx)
		if err != nil {
			return false, err
		}
		l.subject = subject
	}

	nonce, value := "", []byte(nil)
	if p := l.pending; p != nil {
		nonce, value = p.nonce, p.value
	} else {
		var err error
		if nonce, value, err = l.newValue(); err != nil {
			return false, err
		}
	}

	sendAt := time.Now()
	rev, err := l.kv.Create(ctx, l.name, value, jetstream.KeyTTL(l.ttl))
	switch {
	case err == nil:
		l.pending = nil
		l.install(rev, rev, value, nonce, sendAt)
		return true, nil
	case isConflict(err):
		if p := l.pending; p != nil {
			l.pending = nil
			// An earlier unanswered attempt may be the entry that is in
			// the way. It was sent no earlier than firstSend, so the
			// server keeps it at least until firstSend+TTL.
			if rev, ok := l.findOurs(ctx, p.nonce); ok && time.Until(p.firstSend.Add(l.ttl-l.margin)) > 0 {
				l.install(rev, rev, p.value, p.nonce, p.firstSend)
				return true, nil
			}
		}
		return false, nil
	default:
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) && l.pending == nil {
			// No answer from the server: the entry may exist now.
			l.pending = &pendingCreate{nonce: nonce, value: value, firstSend: sendAt}
		}
		return false, fmt.Errorf("lock %q: acquire: %w", l.name, err)
	}
}

// Lock blocks until the lock is acquired or ctx is done. It waits on a watch
// of the key and retries when the entry is deleted, purged or expires, so a
// release is noticed within a round trip rather than a polling interval.
// Errors other than contention (e.g. the server is unreachable) are returned
// rather than retried.
func (l *Lock) Lock(ctx context.Context) error {
	for {
		acquired, err := l.watchAndTry(ctx)
		if acquired || err != nil {
			return err
		}
		// The watcher closed under us (e.g. its subscription was torn
		// down); start a new one.
	}
}

func (l *Lock) watchAndTry(ctx context.Context) (bool, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Watch before trying, so a release between a failed attempt and the
	// start of the watch cannot be missed.
	w, err := l.kv.Watch(wctx, l.name, jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("lock %q: waiting: %w", l.name, ctx.Err())
		}
		return false, fmt.Errorf("lock %q: watch: %w", l.name, err)
	}
	defer w.Stop()

	try := func() (bool, error) {
		ok, err := l.TryLock(ctx)
		if err != nil && ctx.Err() != nil {
			return false, fmt.Errorf("lock %q: waiting: %w", l.name, ctx.Err())
		}
		return ok, err
	}
	if ok, err := try(); ok || err != nil {
		return ok, err
	}
	l.mu.Lock()
	onWait := l.hooks.onWait
	l.mu.Unlock()
	if onWait != nil {
		onWait()
	}
	// The watch is what wakes us. The timer is only a backstop against a
	// missed event (e.g. a marker expired while our watcher was
	// reconnecting), so it runs at the TTL, not as a polling loop.
	backstop := time.NewTimer(l.ttl)
	defer backstop.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("lock %q: waiting: %w", l.name, ctx.Err())
		case e, open := <-w.Updates():
			if !open {
				return false, nil
			}
			if e == nil || e.Operation() == jetstream.KeyValuePut {
				continue
			}
		case <-backstop.C:
			backstop.Reset(l.ttl)
		}
		if ok, err := try(); ok || err != nil {
			return ok, err
		}
	}
}

// Unlock releases the lock with a compare-and-set delete on our latest
// revision, so an entry written by a later holder is never removed. It
// returns ErrNotHeld when the lock is not held or turned out to have been
// lost. Renewal stops in every case; if the delete itself fails for another
// reason, the entry expires on the server within the TTL.
func (l *Lock) Unlock(ctx context.Context) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()

	l.mu.Lock()
	l.checkDeadlineLocked()
	if !l.held {
		l.mu.Unlock()
		return fmt.Errorf("lock %q: release: %w", l.name, ErrNotHeld)
	}
	l.held = false
	l.token = 0
	stop, done, nonce := l.stopRenew, l.renewDone, l.nonce
	l.mu.Unlock()

	stop()
	<-done
	// The renewal goroutine has exited, so rev is final. A renewal that was
	// cut off may still have landed; findOurs below covers that.
	l.mu.Lock()
	rev := l.rev
	l.mu.Unlock()

	err := l.kv.Delete(ctx, l.name, jetstream.LastRevision(rev))
	if err != nil && isConflict(err) {
		if cur, ok := l.findOurs(ctx, nonce); ok {
			rev = cur
			err = l.kv.Delete(ctx, l.name, jetstream.LastRevision(rev))
		}
	}
	switch {
	case err == nil:
		return nil
	case isConflict(err):
		// The entry is no longer ours: it expired while we believed we held
		// it (e.g. the process was paused). That is a loss.
		l.mu.Lock()
		l.signalLostLocked()
		l.mu.Unlock()
		l.log.Warn("lock was lost before release", "revision", rev)
		return fmt.Errorf("lock %q: release: entry changed after revision %d (expired, possibly taken by another holder): %w", l.name, rev, ErrNotHeld)
	default:
		return fmt.Errorf("lock %q: release at revision %d (no longer renewed; it expires within %s): %w", l.name, rev, l.ttl, err)
	}
}

// Held reports whether this Lock holds the lock, by its local view: it turns
// false as soon as the local deadline passes without a successful renewal,
// even if the server has not expired the entry yet.
func (l *Lock) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checkDeadlineLocked()
	return l.held
}

// Token is the fencing token of the current holding, 0 when not held.
//
// It is the stream revision of the acquiring write rather than the latest
// renewal: revisions grow monotonically across all holders, so a resource
// that remembers the highest token it has seen can reject a stale holder,
// and the token stays the same for the whole holding so the resource does
// not mistake a renewal for a new holder.
func (l *Lock) Token() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checkDeadlineLocked()
	if !l.held {
		return 0
	}
	return l.token
}

// Lost returns a channel that is closed the next time a held lock is lost:
// a renewal was rejected (the entry expired or changed), the local deadline
// passed without a successful renewal, or Unlock found the entry was no
// longer ours. A voluntary, successful Unlock does not close it; releasing is
// not losing. After it closes, Lost returns a fresh channel for later
// acquisitions, so call it after acquiring.
func (l *Lock) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checkDeadlineLocked()
	return l.lost
}

// install records a successful acquisition and starts renewing it.
func (l *Lock) install(token, rev uint64, value []byte, nonce string, sendAt time.Time) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	l.mu.Lock()
	l.gen++
	gen := l.gen
	l.held = true
	l.token, l.rev = token, rev
	l.value, l.nonce = value, nonce
	l.deadline = sendAt.Add(l.ttl - l.margin)
	l.stopRenew, l.renewDone = cancel, done
	l.mu.Unlock()
	l.log.Debug("lock acquired", "token", token)
	go l.renew(ctx, gen, sendAt.Add(l.interval), done)
}

// renew keeps the holding alive until ctx is cancelled (Unlock, loss) or a
// renewal is rejected. Every renewal is a compare-and-set on our last
// revision, so it can never resurrect an entry that expired and was taken
// over. A renewal without an answer has an unknown outcome; it is retried
// until the local deadline, which is computed from the send time of the
// last renewal known to have landed: the server stored it no earlier than
// that, so it keeps it at least until then plus the TTL.
func (l *Lock) renew(ctx context.Context, gen uint64, next time.Time, done chan struct{}) {
	defer close(done)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	retry := min(l.interval/4, 250*time.Millisecond)
	var unknownSince time.Time // send time of the first unanswered renewal since the last success

	for {
		l.mu.Lock()
		if l.gen != gen || !l.held {
			l.mu.Unlock()
			return
		}
		if l.checkDeadlineLocked() {
			l.mu.Unlock()
			return
		}
		deadline, rev, value, hooks := l.deadline, l.rev, l.value, l.hooks
		l.mu.Unlock()

		wake := next
		if !hooks.ignoreDeadline && deadline.Before(wake) {
			wake = deadline
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		if now.Before(next) {
			continue // woke for the deadline; the top of the loop handles it
		}
		if hooks.pauseRenew {
			next = now.Add(l.interval)
			continue
		}

		timeout := l.interval
		if left := time.Until(deadline); !hooks.ignoreDeadline && left < timeout {
			timeout = left
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		ack, err := l.js.Publish(actx, l.subject, value,
			jetstream.WithExpectLastSequencePerSubject(rev),
			jetstream.WithMsgTTL(l.ttl))
		cancel()

		switch {
		case err == nil:
			l.mu.Lock()
			if l.gen == gen {
				l.rev = ack.Sequence
				l.deadline = now.Add(l.ttl - l.margin)
			}
			l.mu.Unlock()
			unknownSince = time.Time{}
			next = now.Add(l.interval)
		case ctx.Err() != nil:
			return
		case isConflict(err):
			if !unknownSince.IsZero() {
				// An unanswered renewal may have landed and be what moved
				// the revision. If the entry still carries our nonce it is
				// ours; it was sent no earlier than unknownSince.
				fctx, fcancel := context.WithTimeout(ctx, l.interval)
				cur, ours := l.findOurs(fctx, l.nonceOf(gen))
				fcancel()
				if ours {
					l.mu.Lock()
					if l.gen == gen {
						l.rev = cur
						l.deadline = unknownSince.Add(l.ttl - l.margin)
					}
					l.mu.Unlock()
					unknownSince = time.Time{}
					next = time.Now() // refresh the deadline right away
					continue
				}
			}
			l.mu.Lock()
			l.loseLocked(gen, "renewal rejected: the entry expired or changed", err)
			l.mu.Unlock()
			return
		default:
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) && unknownSince.IsZero() {
				unknownSince = now
			}
			l.log.Debug("lock renewal failed; retrying", "revision", rev, "error", err)
			next = time.Now().Add(retry)
		}
	}
}

func (l *Lock) nonceOf(gen uint64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen {
		return ""
	}
	return l.nonce
}

// checkDeadlineLocked declares the holding lost once the local deadline has
// passed, whoever notices first. It reports whether it did.
func (l *Lock) checkDeadlineLocked() bool {
	if !l.held || l.hooks.ignoreDeadline || time.Now().Before(l.deadline) {
		return false
	}
	l.loseLocked(l.gen, "local deadline passed without a successful renewal", nil)
	return true
}

func (l *Lock) loseLocked(gen uint64, why string, err error) {
	if l.gen != gen || !l.held {
		return
	}
	l.held = false
	l.log.Warn("lock lost", "reason", why, "token", l.token, "error", err)
	l.token = 0
	l.stopRenew()
	l.signalLostLocked()
}

func (l *Lock) signalLostLocked() {
	close(l.lost)
	l.lost = make(chan struct{})
}

// findOurs reports the current revision of the entry if it is a live entry
// carrying nonce.
func (l *Lock) findOurs(ctx context.Context, nonce string) (uint64, bool) {
	if nonce == "" {
		return 0, false
	}
	e, err := l.kv.Get(ctx, l.name)
	if err != nil || e.Operation() != jetstream.KeyValuePut {
		return 0, false
	}
	var v entryValue
	if json.Unmarshal(e.Value(), &v) != nil || v.Nonce != nonce {
		return 0, false
	}
	return e.Revision(), true
}

func (l *Lock) newValue() (string, []byte, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("lock %q: nonce: %w", l.name, err)
	}
	nonce := hex.EncodeToString(b[:])
	value, err := json.Marshal(entryValue{Owner: l.owner, Nonce: nonce})
	if err != nil {
		return "", nil, fmt.Errorf("lock %q: encode value: %w", l.name, err)
	}
	return nonce, value, nil
}

// isConflict reports a compare-and-set failure: the key exists, or its last
// revision is not the one we expected. Replicated streams report it with a
// different code (10164) than single-replica ones (10071).
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
