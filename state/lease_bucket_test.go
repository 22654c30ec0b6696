package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestLeaseBucketConfig(t *testing.T) {
	ctx, js := testJetStream(t)
	if _, err := EnsureLeaseKV(ctx, js, "leases", 1); err != nil {
		t.Fatal(err)
	}
	// A second call (another process starting) must accept the bucket as is.
	if _, err := EnsureLeaseKV(ctx, js, "leases", 1); err != nil {
		t.Fatal(err)
	}
	info, err := js.Stream(ctx, "KV_leases")
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	if !cfg.AllowMsgTTL || cfg.SubjectDeleteMarkerTTL != 0 {
		t.Fatalf("lease bucket: AllowMsgTTL=%v SubjectDeleteMarkerTTL=%v, want true and 0", cfg.AllowMsgTTL, cfg.SubjectDeleteMarkerTTL)
	}

	// A bucket left with markers (by an older version) is fixed on open.
	if _, err := EnsureKV(ctx, js, TTLBucketConfig("old", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureLeaseKV(ctx, js, "old", 1); err != nil {
		t.Fatal(err)
	}
	info, err = js.Stream(ctx, "KV_old")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := info.CachedInfo().Config; !cfg.AllowMsgTTL || cfg.SubjectDeleteMarkerTTL != 0 {
		t.Fatalf("old bucket not fixed: AllowMsgTTL=%v SubjectDeleteMarkerTTL=%v", cfg.AllowMsgTTL, cfg.SubjectDeleteMarkerTTL)
	}
}

// TestTakeoverAtExpiryIsNeverErased writes many records with a 1s TTL and
// takes each over by compare-and-set at a moment spread around its expiry,
// which is when candidates take over a dead holder's lease. Every takeover
// the server acknowledged must still be the key's value afterwards. (In a
// bucket with subject delete markers a takeover that lands while the server
// is placing the marker for the record it replaced is erased by it; that is
// how two candidates once both became leader. The window is microseconds,
// so this test rarely catches that race; TestLeaseBucketConfig pins the
// configuration that rules it out.)
func TestTakeoverAtExpiryIsNeverErased(t *testing.T) {
	ctx, js := testJetStream(t)
	kv, err := EnsureLeaseKV(ctx, js, "leases", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := takeoversSurviveExpiry(ctx, js, kv, 200); err != nil {
		t.Fatal(err)
	}
}

func takeoversSurviveExpiry(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, keys int) error {
	const ttl = time.Second
	type key struct {
		name    string
		written time.Time
		rev     uint64
		won     uint64
	}
	all := make([]*key, keys)
	for i := range all {
		k := &key{name: fmt.Sprintf("k%03d", i), written: time.Now()}
		rev, err := PutCAS(ctx, js, kv.Bucket(), k.name, []byte("old"), 0, ttl)
		if err != nil {
			return err
		}
		k.rev = rev
		all[i] = k
	}
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for i, k := range all {
		// Spread the takeovers over the second after the expiry: the
		// server expires on its own timer within that second, so some
		// takeovers replace a live record by compare-and-set, some find
		// the key empty and create it, and some race the expiry itself.
		at := k.written.Add(ttl - 5*time.Millisecond + time.Duration(i)*1100*time.Millisecond/time.Duration(keys))
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(at)) // the moment under test, not a synchronisation
			rev, err := PutCAS(ctx, js, kv.Bucket(), k.name, []byte("new"), k.rev, 5*time.Second)
			if IsCASFailure(err) {
				if _, gerr := kv.Get(ctx, k.name); errors.Is(gerr, jetstream.ErrKeyNotFound) {
					rev, err = kv.Create(ctx, k.name, []byte("new"), jetstream.KeyTTL(5*time.Second))
				}
			}
			if err != nil {
				errs <- fmt.Errorf("%s: takeover: %w", k.name, err)
				return
			}
			k.won = rev
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	// Any marker for the replaced records is placed by the server's expiry
	// pass, which runs within a second of their expiry; watch that long.
	until := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(until) {
		for _, k := range all {
			e, err := kv.Get(ctx, k.name)
			if err != nil {
				return fmt.Errorf("%s: acknowledged takeover (rev %d) is gone: %w", k.name, k.won, err)
			}
			if e.Revision() != k.won {
				return fmt.Errorf("%s: acknowledged takeover rev %d replaced by rev %d", k.name, k.won, e.Revision())
			}
		}
	}
	return nil
}

func testJetStream(t *testing.T) (context.Context, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	srv, err := StartServer(ctx, ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js, err := Connect(ctx, ConnectConfig{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return ctx, js
}

// LastFromLeader reads what the stream's leader holds for a key.
func TestLastFromLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := StartServer(ctx, ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, js, err := Connect(ctx, ConnectConfig{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	kv, err := EnsureLeaseKV(ctx, js, "leader_read", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, found, err := LastFromLeader(ctx, js, "KV_leader_read", "$KV.leader_read.k"); err != nil || found {
		t.Fatalf("empty key: found %v, err %v", found, err)
	}
	if _, err := kv.Put(ctx, "k", []byte("one")); err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(ctx, "k", []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	seq, data, found, err := LastFromLeader(ctx, js, "KV_leader_read", "$KV.leader_read.k")
	if err != nil || !found || seq != rev || string(data) != "two" {
		t.Fatalf("got seq %d data %q found %v err %v, want %d two", seq, data, found, err, rev)
	}
}
