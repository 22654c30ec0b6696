package state

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "node-1", "db_2", strings.Repeat("x", MaxNameLen)} {
		if err := ValidateName("app name", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a b", "a*", "a>", "ä", strings.Repeat("x", MaxNameLen+1)} {
		err := ValidateName("app name", bad)
		if err == nil || !strings.Contains(err.Error(), "app name") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestServerTTLNeverShortens(t *testing.T) {
	for _, c := range []struct{ in, want time.Duration }{
		{0, time.Second}, {300 * time.Millisecond, time.Second}, {time.Second, time.Second},
		{1001 * time.Millisecond, 2 * time.Second}, {4 * time.Second, 4 * time.Second},
	} {
		if got := ServerTTL(c.in); got != c.want || got < c.in {
			t.Errorf("ServerTTL(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	got := RedactURL("nats://user:secret@h1:4222,nats://h2:4222")
	if strings.Contains(got, "secret") || !strings.Contains(got, "h2:4222") {
		t.Fatalf("RedactURL: %s", got)
	}
}

func TestEmbeddedServerWithTokenRefusesAnonymous(t *testing.T) {
	ctx := context.Background()
	srv, err := StartServer(ctx, ServerConfig{Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if _, _, err := Connect(ctx, ConnectConfig{URL: srv.ClientURL()}); err == nil {
		t.Fatal("anonymous client accepted by a token-protected server")
	}
	nc, _, err := Connect(ctx, ConnectConfig{URL: srv.ClientURL(), Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// A prober without an interval (the fast path turned off) never reports
// anyone gone, and never panics trying.
func TestProberWithoutInterval(t *testing.T) {
	p := NewProber(nil, Layout{Platform: "t"}, 0)
	gone, stop := p.Gone("n1", "i1")
	defer stop()
	select {
	case <-gone:
		t.Fatal("reported gone without probing")
	default:
	}
}
