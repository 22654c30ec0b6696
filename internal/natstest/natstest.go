// Package natstest starts an embedded NATS server with JetStream for tests,
// with its storage in the test's temporary directory.
package natstest

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/state"
)

// Server is a running test server; it shuts down when the test ends.
type Server struct {
	URL string
}

// Start starts a server for t.
func Start(t testing.TB) *Server {
	t.Helper()
	srv, err := state.StartServer(context.Background(), state.ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return &Server{URL: srv.ClientURL()}
}

// Connect opens a connection (closed when the test ends) and its
// JetStream context.
func (s *Server) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// JetStream starts a server and returns a JetStream context on it.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	_, js := Start(t).Connect(t)
	return js
}
