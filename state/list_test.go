package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestListEntries(t *testing.T) {
	ctx, js := testJetStream(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "list"})
	if err != nil {
		t.Fatal(err)
	}
	keysOf := func(filter string) []string {
		t.Helper()
		entries, err := ListEntries(ctx, js, kv, filter)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range entries {
			keys = append(keys, e.Key()+"="+string(e.Value()))
		}
		slices.Sort(keys)
		return keys
	}
	if got := keysOf(">"); len(got) != 0 {
		t.Fatalf("empty bucket listed %v", got)
	}
	for i := range 300 {
		if _, err := kv.PutString(ctx, fmt.Sprintf("a.%03d", i), "1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.PutString(ctx, "a.007", "2"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "a.008"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "b.x", "1"); err != nil {
		t.Fatal(err)
	}
	all := keysOf(">")
	if len(all) != 300 || !slices.Contains(all, "a.007=2") || slices.Contains(all, "a.008=1") {
		t.Fatalf("listed %d entries (%v...), want 300 with a.007's latest value and without deleted a.008", len(all), all[:3])
	}
	if got := keysOf("b.>"); !slices.Equal(got, []string{"b.x=1"}) {
		t.Fatalf("filtered listing %v", got)
	}

	// A listing cut short by its context is an error, never a short list.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if entries, err := ListEntries(cctx, js, kv, ">"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled listing returned %d entries, err %v; want context.Canceled", len(entries), err)
	}
}

// Keys rewritten all the time (presence heartbeats) are all listed, every
// time: a watcher-based listing misses some (see ListEntries).
func TestListEntriesWhileKeysAreRewritten(t *testing.T) {
	ctx, js := testJetStream(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	const keys = 5
	for i := range keys {
		if _, err := kv.PutString(ctx, fmt.Sprintf("node.%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; wctx.Err() == nil; n++ {
			_, _ = kv.PutString(wctx, fmt.Sprintf("node.%d", n%keys), "x")
		}
	}()
	for range 200 {
		entries, err := ListEntries(ctx, js, kv, "node.>")
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != keys {
			t.Fatalf("listed %d keys while they were rewritten, want %d", len(entries), keys)
		}
	}
	stop()
	<-done
}
