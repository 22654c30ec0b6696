//go:build linux

package vip

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// newVIP builds a VIP managed inside the topology's node namespace.
func newVIP(t testing.TB, tp *topology, cfg Config) *VIP {
	t.Helper()
	cfg.Namespace = tp.node
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Address, err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not synchronisation
	}
}

func mustPresent(t testing.TB, v *VIP) bool {
	t.Helper()
	ok, err := v.Present()
	if err != nil {
		t.Fatalf("Present: %v", err)
	}
	return ok
}

func TestAddPresentRemove(t *testing.T) {
	tp := newTopology(t)
	ctx := context.Background()
	v := newVIP(t, tp, Config{Address: netip.MustParsePrefix("198.18.0.100/24"), Interface: nodeIf, ARPInterval: 10 * time.Millisecond})

	if mustPresent(t, v) {
		t.Fatal("present before Add")
	}
	if err := v.Add(ctx); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if !mustPresent(t, v) {
		t.Fatal("not present after Add")
	}
	if !tp.hasAddr(t, "198.18.0.100/24") {
		t.Fatal("198.18.0.100/24 not on the link according to netlink")
	}
	if !tp.hasAddr(t, "198.18.0.1/24") {
		t.Fatal("pre-existing 198.18.0.1/24 disappeared")
	}

	// Exact match: neither a textual prefix of the address nor the same
	// address with another length counts.
	for _, other := range []string{"198.18.0.10/24", "198.18.0.1/25", "198.18.0.100/25"} {
		o := newVIP(t, tp, Config{Address: netip.MustParsePrefix(other), Interface: nodeIf})
		if mustPresent(t, o) {
			t.Fatalf("%s reported present although only 198.18.0.1/24 and 198.18.0.100/24 exist", other)
		}
	}

	if err := v.Add(ctx); err != nil {
		t.Fatalf("second Add: %v", err)
	}
	if !mustPresent(t, v) {
		t.Fatal("not present after second Add")
	}
	if err := v.Remove(ctx); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := v.Remove(ctx); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if mustPresent(t, v) {
		t.Fatal("present after Remove")
	}
	if tp.hasAddr(t, "198.18.0.100/24") {
		t.Fatal("address still on the link after Remove")
	}
	if !tp.hasAddr(t, "198.18.0.1/24") {
		t.Fatal("Remove took the link's own address with it")
	}
	if err := v.Renew(ctx); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Renew after Remove: got %v, want ErrNotOwned", err)
	}
}

func TestAddLinkDown(t *testing.T) {
	tp := newTopology(t)
	v := newVIP(t, tp, Config{Address: netip.MustParsePrefix("198.18.0.100/24"), Interface: nodeIf})
	if err := tp.nodeH.LinkSetDown(tp.nodeLink); err != nil {
		t.Fatalf("set link down: %v", err)
	}
	err := v.Add(context.Background())
	if !errors.Is(err, ErrLinkDown) {
		t.Fatalf("Add on a down link: got %v, want ErrLinkDown", err)
	}
	if tp.hasAddr(t, "198.18.0.100/24") {
		t.Fatal("Add on a down link left the address behind")
	}
}

func TestInferInterface(t *testing.T) {
	tp := newTopology(t)
	var (
		got, none  string
		err1, err2 error
	)
	// InferInterface works on the caller's namespace, so run it on a thread
	// switched into "node".
	if err := doInNamespace(tp.node, func() error {
		got, err1 = InferInterface(netip.MustParsePrefix("198.18.0.100/24"))
		none, err2 = InferInterface(netip.MustParsePrefix("203.0.113.10/24"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err1 != nil || got != nodeIf {
		t.Fatalf("InferInterface(198.18.0.100/24) = %q, %v; want %q", got, err1, nodeIf)
	}
	if !errors.Is(err2, ErrNoInterface) {
		t.Fatalf("InferInterface(unrelated) = %q, %v; want ErrNoInterface", none, err2)
	}

	// New infers the same way when Interface is empty.
	v := newVIP(t, tp, Config{Address: netip.MustParsePrefix("fd00::100/64")})
	if v.Interface() != nodeIf {
		t.Fatalf("New inferred %q, want %q", v.Interface(), nodeIf)
	}
	_, err := New(Config{Address: netip.MustParsePrefix("203.0.113.10/24"), Namespace: tp.node, Logger: quietLogger})
	if !errors.Is(err, ErrNoInterface) {
		t.Fatalf("New(unrelated subnet): got %v, want ErrNoInterface", err)
	}
	_, err = New(Config{Address: netip.MustParsePrefix("198.18.0.100/24"), Interface: "nope0", Namespace: tp.node, Logger: quietLogger})
	if !errors.Is(err, ErrNoInterface) {
		t.Fatalf("New(missing interface): got %v, want ErrNoInterface", err)
	}
}

func TestLifetimeExpires(t *testing.T) {
	tp := newTopology(t)
	v := newVIP(t, tp, Config{Address: netip.MustParsePrefix("198.18.0.100/24"), Interface: nodeIf, ValidLifetime: 2 * time.Second})
	if err := v.Add(context.Background()); err != nil {
		t.Fatalf("Add: %v", err)
	}
	start := time.Now()
	if !mustPresent(t, v) {
		t.Fatal("not present after Add")
	}
	// The kernel checks IPv4 lifetimes with up to ~1s of timer slack, so
	// allow a little more than the 4s the lifetime alone would suggest.
	eventually(t, 5*time.Second, "address to expire", func() bool { return !mustPresent(t, v) })
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Fatalf("address vanished after %v, before its 2s lifetime", took)
	}
	if err := v.Renew(context.Background()); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Renew after expiry: got %v, want ErrNotOwned", err)
	}
}

func TestLifetimeRenewed(t *testing.T) {
	tp := newTopology(t)
	ctx := context.Background()
	v := newVIP(t, tp, Config{Address: netip.MustParsePrefix("198.18.0.100/24"), Interface: nodeIf, ValidLifetime: 2 * time.Second})
	if err := v.Add(ctx); err != nil {
		t.Fatalf("Add: %v", err)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(4 * time.Second)
	for time.Now().Before(end) {
		<-tick.C
		if err := v.Renew(ctx); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		if !mustPresent(t, v) {
			t.Fatal("address vanished despite renewal")
		}
	}
	addrs, err := tp.nodeH.AddrList(tp.nodeLink, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IPNet.String() == "198.18.0.100/24" && (a.ValidLft <= 0 || a.ValidLft > 2) {
			t.Fatalf("valid lifetime %d, want a finite value <= 2s", a.ValidLft)
		}
	}
}

func BenchmarkAddRemove(b *testing.B) {
	tp := newTopology(b)
	ctx := context.Background()
	v := newVIP(b, tp, Config{Address: netip.MustParsePrefix("198.18.0.100/24"), Interface: nodeIf, ARPCount: 1})
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Add(ctx); err != nil {
			b.Fatal(err)
		}
		if err := v.Remove(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
