package lock

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ozanturksever/go-cluster/state"
)

const testBucket = "locks_test"

type env struct {
	url string
	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue
}

// newEnv starts a private embedded server with a locks bucket, so tests do
// not share lock state.
func newEnv(tb testing.TB) *env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := state.StartServer(ctx, state.ServerConfig{})
	if err != nil {
		tb.Fatalf("start server: %v", err)
	}
	tb.Cleanup(srv.Shutdown)
	e := &env{url: srv.ClientURL()}
	e.nc, e.js, e.kv = connect(tb, e.url)
	if _, err := e.js.CreateKeyValue(ctx, BucketConfig(testBucket, 1)); err != nil {
		tb.Fatalf("create bucket: %v", err)
	}
	if e.kv, err = e.js.KeyValue(ctx, testBucket); err != nil {
		tb.Fatalf("bind bucket: %v", err)
	}
	return e
}

// connect opens an independent connection, so a test can cut one holder off
// without affecting the others.
func connect(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream, jetstream.KeyValue) {
	tb.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(0))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, testBucket)
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		tb.Fatalf("bind bucket: %v", err)
	}
	return nc, js, kv
}

func newLock(tb testing.TB, js jetstream.JetStream, kv jetstream.KeyValue, name string, opts Options) *Lock {
	tb.Helper()
	l, err := New(js, kv, name, opts)
	if err != nil {
		tb.Fatalf("New(%q): %v", name, err)
	}
	return l
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustTry(t *testing.T, ctx context.Context, l *Lock, want bool) {
	t.Helper()
	got, err := l.TryLock(ctx)
	if err != nil {
		t.Fatalf("TryLock(%q, owner %q): %v", l.name, l.owner, err)
	}
	if got != want {
		t.Fatalf("TryLock(%q, owner %q) = %v, want %v", l.name, l.owner, got, want)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func renewDone(l *Lock) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewDone
}

func setHooks(l *Lock, h testHooks) {
	l.mu.Lock()
	l.hooks = h
	l.mu.Unlock()
}

func TestNewValidation(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"", "a.b", "a b", "a*", "a>", "ä"} {
		if _, err := New(e.js, e.kv, name, Options{}); err == nil {
			t.Errorf("New(%q) accepted an invalid name", name)
		}
	}
	if _, err := New(e.js, e.kv, "ok-Name_1", Options{}); err != nil {
		t.Errorf("New(valid name): %v", err)
	}
	for _, ttl := range []time.Duration{time.Nanosecond, 500 * time.Millisecond, 999 * time.Millisecond, -time.Second} {
		_, err := New(e.js, e.kv, "x", Options{TTL: ttl})
		if !errors.Is(err, ErrTTLTooShort) {
			t.Errorf("New(TTL %s) error = %v, want ErrTTLTooShort", ttl, err)
		}
	}
	for ttl, want := range map[time.Duration]time.Duration{
		0:                       DefaultTTL,
		time.Second:             time.Second,
		1500 * time.Millisecond: time.Second, // server granularity is whole seconds
		7 * time.Second:         7 * time.Second,
	} {
		l, err := New(e.js, e.kv, "x", Options{TTL: ttl})
		if err != nil {
			t.Fatalf("New(TTL %s): %v", ttl, err)
		}
		if l.ttl != want {
			t.Errorf("New(TTL %s).ttl = %s, want %s", ttl, l.ttl, want)
		}
	}
	if _, err := New(nil, e.kv, "x", Options{}); err == nil {
		t.Error("New accepted a nil JetStream")
	}
}

func TestBucketConfig(t *testing.T) {
	cfg := BucketConfig("b", 0)
	if cfg.Bucket != "b" || cfg.History != 1 || cfg.TTL != 0 || cfg.Replicas != 1 || cfg.LimitMarkerTTL < time.Second {
		t.Fatalf("BucketConfig = %+v", cfg)
	}
	e := newEnv(t)
	ctx := testCtx(t, 10*time.Second)
	st, err := e.kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
	if !sc.AllowMsgTTL || sc.MaxAge != 0 || sc.MaxMsgsPerSubject != 1 {
		t.Fatalf("bucket stream config: AllowMsgTTL=%v MaxAge=%s MaxMsgsPerSubject=%d", sc.AllowMsgTTL, sc.MaxAge, sc.MaxMsgsPerSubject)
	}
}

// A bucket without per-message TTLs would make locks immortal if a holder
// died; refuse it with a message that says how to fix it.
func TestBucketWithoutMsgTTLRejected(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 10*time.Second)
	plain, err := e.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "plain", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	l := newLock(t, e.js, plain, "job", Options{TTL: time.Second})
	ok, err := l.TryLock(ctx)
	if ok || err == nil || !strings.Contains(err.Error(), "BucketConfig") {
		t.Fatalf("TryLock on bucket without msg TTL = %v, %v; want an error naming BucketConfig", ok, err)
	}
}

func TestPutPrefix(t *testing.T) {
	e := newEnv(t)
	dom, err := jetstream.NewWithDomain(e.nc, "hub")
	if err != nil {
		t.Fatal(err)
	}
	pfx, err := jetstream.NewWithAPIPrefix(e.nc, "$JS.custom.API")
	if err != nil {
		t.Fatal(err)
	}
	mirror := &jetstream.StreamSource{Name: "KV_origin"}
	external := &jetstream.StreamSource{Name: "KV_origin", External: &jetstream.ExternalStream{APIPrefix: "$JS.leaf.API"}}
	for _, c := range []struct {
		js   jetstream.JetStream
		cfg  jetstream.StreamConfig
		want string
	}{
		{e.js, jetstream.StreamConfig{}, "$KV.b."},
		{dom, jetstream.StreamConfig{}, "$JS.hub.API.$KV.b."},
		{pfx, jetstream.StreamConfig{}, "$JS.custom.API.$KV.b."},
		{e.js, jetstream.StreamConfig{Mirror: mirror}, "$KV.origin."},
		{e.js, jetstream.StreamConfig{Mirror: external}, "$JS.leaf.API.$KV.origin."},
	} {
		if got := putPrefix(c.js, c.cfg, "b"); got != c.want {
			t.Errorf("putPrefix = %q, want %q", got, c.want)
		}
	}
}

// Proves mutual exclusion and what a holder and a non-holder report.
func TestMutualExclusion(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 10*time.Second)
	a := newLock(t, e.js, e.kv, "job", Options{Owner: "node-a"})
	b := newLock(t, e.js, e.kv, "job", Options{Owner: "node-b"})

	mustTry(t, ctx, a, true)
	mustTry(t, ctx, b, false)
	if !a.Held() || a.Token() == 0 {
		t.Fatalf("holder: Held=%v Token=%d", a.Held(), a.Token())
	}
	if b.Held() || b.Token() != 0 {
		t.Fatalf("non-holder: Held=%v Token=%d", b.Held(), b.Token())
	}
	if _, err := a.TryLock(ctx); !errors.Is(err, ErrAlreadyHeld) {
		t.Fatalf("TryLock while held = %v, want ErrAlreadyHeld", err)
	}
	if err := b.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("non-holder Unlock = %v, want ErrNotHeld", err)
	}

	entry, err := e.kv.Get(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	var v entryValue
	if err := json.Unmarshal(entry.Value(), &v); err != nil || v.Owner != "node-a" {
		t.Fatalf("entry value %q (%v): want owner node-a", entry.Value(), err)
	}
	if entry.Revision() != a.Token() {
		t.Fatalf("token %d, want the acquiring revision %d", a.Token(), entry.Revision())
	}

	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	mustTry(t, ctx, b, true)
	if err := b.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// Proves Unlock is refused when not held, stops renewal, does not signal a
// loss, and that the Lock can be acquired again.
func TestUnlockAndReacquire(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 10*time.Second)
	a := newLock(t, e.js, e.kv, "job", Options{TTL: time.Second})
	if err := a.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Unlock before acquiring = %v, want ErrNotHeld", err)
	}
	for i := range 3 {
		mustTry(t, ctx, a, true)
		lost, done := a.Lost(), renewDone(a)
		if err := a.Unlock(ctx); err != nil {
			t.Fatalf("round %d: Unlock: %v", i, err)
		}
		if !isClosed(done) {
			t.Fatalf("round %d: renewal goroutine still running after Unlock", i)
		}
		if isClosed(lost) {
			t.Fatalf("round %d: a voluntary Unlock closed Lost", i)
		}
		if a.Held() || a.Token() != 0 {
			t.Fatalf("round %d: after Unlock Held=%v Token=%d", i, a.Held(), a.Token())
		}
		if err := a.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("round %d: second Unlock = %v, want ErrNotHeld", i, err)
		}
	}
}

// Proves Lock wakes from the watch: with a 10s TTL (so the 10s backstop
// timer cannot be what wakes it) the waiter acquires within a fraction of a
// second of the release.
func TestLockWakesOnUnlock(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 20*time.Second)
	a := newLock(t, e.js, e.kv, "job", Options{TTL: 10 * time.Second})
	b := newLock(t, e.js, e.kv, "job", Options{TTL: 10 * time.Second})
	mustTry(t, ctx, a, true)

	waiting := make(chan struct{})
	setHooks(b, testHooks{onWait: func() { close(waiting) }})
	acquired := make(chan error, 1)
	go func() { acquired <- b.Lock(ctx) }()

	select {
	case <-waiting:
	case err := <-acquired:
		t.Fatalf("Lock returned while held elsewhere: %v", err)
	case <-ctx.Done():
		t.Fatal("b never started waiting")
	}
	released := time.Now()
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-acquired; err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if took := time.Since(released); took > time.Second {
		t.Fatalf("Lock acquired %s after the release; want well under the 10s TTL", took)
	}
	if !b.Held() || b.Token() <= 0 {
		t.Fatalf("after Lock: Held=%v Token=%d", b.Held(), b.Token())
	}
	if err := b.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// Proves a holder that stops renewing loses the lock on the server after
// its TTL, and that the server's expiry marker (not a poll: the waiter's
// own TTL and backstop are 30s) wakes a blocked Lock.
func TestLockWakesOnExpiry(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 20*time.Second)
	ncA, jsA, kvA := connect(t, e.url)
	a := newLock(t, jsA, kvA, "job", Options{TTL: time.Second})
	b := newLock(t, e.js, e.kv, "job", Options{TTL: 30 * time.Second})
	mustTry(t, ctx, a, true)

	waiting := make(chan struct{})
	setHooks(b, testHooks{onWait: func() { close(waiting) }})
	acquired := make(chan error, 1)
	go func() { acquired <- b.Lock(ctx) }()
	select {
	case <-waiting:
	case err := <-acquired:
		t.Fatalf("Lock returned while held elsewhere: %v", err)
	case <-ctx.Done():
		t.Fatal("b never started waiting")
	}

	cut := time.Now()
	ncA.Close() // a can no longer renew
	if err := <-acquired; err != nil {
		t.Fatalf("Lock: %v", err)
	}
	// Server expiry is 1s after a's last renewal; allow for the expiry
	// timer's lateness but stay far below b's 30s backstop.
	if took := time.Since(cut); took > 5*time.Second {
		t.Fatalf("waiter acquired %s after the holder was cut off; want about one TTL", took)
	}
	if err := b.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// Proves renewal keeps a 1s-TTL lock for several TTLs, with the fencing
// token unchanged and the CAS revision advancing.
func TestRenewKeepsLockAlive(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 20*time.Second)
	a := newLock(t, e.js, e.kv, "job", Options{TTL: time.Second})
	b := newLock(t, e.js, e.kv, "job", Options{TTL: time.Second})
	mustTry(t, ctx, a, true)
	token, lost := a.Token(), a.Lost()

	// Let real time pass (3.5 TTLs), checking all along that the lock is
	// held and exclusive.
	end := time.NewTimer(3500 * time.Millisecond)
	defer end.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for held := true; held; {
		select {
		case <-end.C:
			held = false
		case <-lost:
			t.Fatal("lock lost while renewing")
		case <-tick.C:
			if !a.Held() || a.Token() != token {
				t.Fatalf("Held=%v Token=%d, want true %d", a.Held(), a.Token(), token)
			}
			mustTry(t, ctx, b, false)
		}
	}
	a.mu.Lock()
	rev := a.rev
	a.mu.Unlock()
	if rev <= token {
		t.Fatalf("CAS revision %d did not advance past token %d: no renewals happened", rev, token)
	}
	entry, err := e.kv.Get(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if entry.Revision() != rev {
		t.Fatalf("entry revision %d, holder's revision %d", entry.Revision(), rev)
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kv.Get(ctx, "job"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("entry after Unlock: %v, want ErrKeyNotFound", err)
	}
}

// Proves fencing tokens grow strictly across holders and re-acquisitions.
func TestFencingTokenIncreases(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 10*time.Second)
	a := newLock(t, e.js, e.kv, "job", Options{})
	b := newLock(t, e.js, e.kv, "job", Options{})
	var last uint64
	for i, l := range []*Lock{a, b, a, b, a} {
		mustTry(t, ctx, l, true)
		tok := l.Token()
		if tok <= last {
			t.Fatalf("acquisition %d: token %d not above previous %d", i, tok, last)
		}
		last = tok
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Lock safety: a holder that is frozen (neither renewing nor noticing its
// deadline, like a paused process) loses the lock on the server; another
// holder takes it; the stale holder's Unlock is refused by the server's
// compare-and-set and leaves the new holder's entry intact.
func TestStaleHolderCannotUnlockNewHolder(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 20*time.Second)
	_, jsA, kvA := connect(t, e.url)
	a := newLock(t, jsA, kvA, "job", Options{TTL: time.Second, Owner: "a"})
	b := newLock(t, e.js, e.kv, "job", Options{TTL: 10 * time.Second, Owner: "b"})

	mustTry(t, ctx, a, true)
	setHooks(a, testHooks{pauseRenew: true, ignoreDeadline: true})
	tokenA, lostA := a.Token(), a.Lost()

	if err := b.Lock(ctx); err != nil { // acquires once a's entry expires
		t.Fatalf("Lock: %v", err)
	}
	tokenB := b.Token()
	if tokenB <= tokenA {
		t.Fatalf("new holder's token %d not above stale holder's %d", tokenB, tokenA)
	}
	if !a.Held() {
		t.Fatal("test setup: the frozen holder should still believe it holds the lock")
	}

	if err := a.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("stale Unlock = %v, want ErrNotHeld", err)
	}
	if !isClosed(lostA) {
		t.Fatal("stale holder's Lost not closed after Unlock found the lock lost")
	}
	entry, err := e.kv.Get(ctx, "job")
	if err != nil {
		t.Fatalf("new holder's entry after stale Unlock: %v", err)
	}
	var v entryValue
	if err := json.Unmarshal(entry.Value(), &v); err != nil || v.Owner != "b" || entry.Revision() < tokenB {
		t.Fatalf("entry after stale Unlock: rev %d value %q; want b's entry", entry.Revision(), entry.Value())
	}
	if !b.Held() {
		t.Fatal("new holder lost the lock")
	}
	if err := b.Unlock(ctx); err != nil {
		t.Fatalf("new holder's Unlock: %v", err)
	}
}

// Proves a holder cut off from NATS declares the lock lost by its local
// deadline (before the server expiry), closes Lost, stops its renewal
// goroutine, and refuses Unlock.
func TestLostWhenConnectionDies(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 20*time.Second)
	ncA, jsA, kvA := connect(t, e.url)
	a := newLock(t, jsA, kvA, "job", Options{TTL: time.Second})
	mustTry(t, ctx, a, true)
	lost, done := a.Lost(), renewDone(a)

	cut := time.Now()
	ncA.Close()
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("Lost not closed 5s after the connection died (TTL 1s)")
	}
	// The deadline is 0.9s after the last renewal; the connection is closed,
	// so nothing but the local deadline can have declared the loss.
	if took := time.Since(cut); took > 2*time.Second {
		t.Fatalf("loss declared %s after the cut; the local deadline is under one TTL", took)
	}
	waitFor(t, 5*time.Second, "renewal goroutine to exit", func() bool { return isClosed(done) })
	if a.Held() || a.Token() != 0 {
		t.Fatalf("after loss: Held=%v Token=%d", a.Held(), a.Token())
	}
	if err := a.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Unlock after loss = %v, want ErrNotHeld", err)
	}
	if isClosed(a.Lost()) {
		t.Fatal("Lost after a loss should be a fresh channel for the next acquisition")
	}

	// The server expires the entry too; another node can take the lock.
	b := newLock(t, e.js, e.kv, "job", Options{TTL: time.Second})
	if err := b.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// Proves a renewal rejected by the server's compare-and-set (here an
// operator force-deleted the entry) ends the holding at the next renewal,
// long before the local deadline (9s with a 10s TTL).
func TestLostWhenRenewRejected(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 20*time.Second)
	a := newLock(t, e.js, e.kv, "job", Options{TTL: 10 * time.Second})
	mustTry(t, ctx, a, true)
	lost, done := a.Lost(), renewDone(a)

	removed := time.Now()
	if err := e.kv.Delete(ctx, "job"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-ctx.Done():
		t.Fatal("Lost not closed after the entry was removed")
	}
	if took := time.Since(removed); took > 6*time.Second {
		t.Fatalf("loss noticed %s after removal; want by the next renewal (every 3.3s)", took)
	}
	waitFor(t, 5*time.Second, "renewal goroutine to exit", func() bool { return isClosed(done) })
	if a.Held() {
		t.Fatal("still held after a rejected renewal")
	}
	// The removal freed the lock; it can be taken again at once.
	mustTry(t, ctx, a, true)
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// Proves exactly one of many concurrent TryLocks wins, over several rounds.
func TestConcurrentTryLock(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 20*time.Second)
	const n = 16
	locks := make([]*Lock, n)
	for i := range locks {
		locks[i] = newLock(t, e.js, e.kv, "job", Options{})
	}
	for round := range 5 {
		start := make(chan struct{})
		won := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, l := range locks {
			wg.Go(func() {
				<-start
				won[i], errs[i] = l.TryLock(ctx)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i := range locks {
			if errs[i] != nil {
				t.Fatalf("round %d: TryLock %d: %v", round, i, errs[i])
			}
			if won[i] {
				if winner >= 0 {
					t.Fatalf("round %d: both %d and %d acquired the lock", round, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody acquired the lock", round)
		}
		if err := locks[winner].Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Proves Lock gives up when its context ends, reporting the context error.
func TestLockContextCancel(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 10*time.Second)
	a := newLock(t, e.js, e.kv, "job", Options{})
	b := newLock(t, e.js, e.kv, "job", Options{})
	mustTry(t, ctx, a, true)

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := b.Lock(short)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"job"`) {
		t.Fatalf("Lock with expiring context = %v, want DeadlineExceeded naming the lock", err)
	}
	if b.Held() {
		t.Fatal("b holds the lock after giving up")
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// Proves Unlock still releases the lock when a renewal landed whose answer
// we never saw (so our CAS revision is stale): it recognises its own entry
// by nonce.
func TestUnlockAfterUnansweredRenewal(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 10*time.Second)
	a := newLock(t, e.js, e.kv, "job", Options{})
	mustTry(t, ctx, a, true)
	a.mu.Lock()
	rev, value := a.rev, a.value
	a.mu.Unlock()
	// A renewal that reached the server but whose ack was lost.
	if _, err := e.js.Publish(ctx, "$KV."+testBucket+".job", value,
		jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(a.ttl)); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if _, err := e.kv.Get(ctx, "job"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("entry after Unlock: %v, want ErrKeyNotFound", err)
	}
}

// Proves an acquisition whose answer was lost is adopted by the next
// attempt instead of blocking everyone until it expires, and that someone
// else's entry is not adopted.
func TestTryLockAdoptsUnansweredCreate(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 10*time.Second)
	a := newLock(t, e.js, e.kv, "job", Options{})
	nonce, value, err := a.newValue()
	if err != nil {
		t.Fatal(err)
	}
	a.pending = &pendingCreate{nonce: nonce, value: value, firstSend: time.Now()}
	rev, err := e.kv.Create(ctx, "job", value, jetstream.KeyTTL(a.ttl)) // the write that landed
	if err != nil {
		t.Fatal(err)
	}
	mustTry(t, ctx, a, true)
	if a.Token() != rev {
		t.Fatalf("adopted token %d, want %d", a.Token(), rev)
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	b := newLock(t, e.js, e.kv, "job", Options{})
	mustTry(t, ctx, b, true)
	a.pending = &pendingCreate{nonce: nonce, value: value, firstSend: time.Now()}
	mustTry(t, ctx, a, false)
	if a.pending != nil {
		t.Fatal("pending acquisition kept after it was found not to have landed")
	}
	if err := b.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	l := newLock(b, e.js, e.kv, "bench", Options{})
	for b.Loop() {
		ok, err := l.TryLock(ctx)
		if err != nil || !ok {
			b.Fatalf("TryLock = %v, %v", ok, err)
		}
		if err := l.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
