package cluster

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/ozanturksever/go-cluster/internal/sqlitetest"
)

func TestMain(m *testing.M) {
	// Keep test output readable; -v shows the platform's logs.
	flag.Parse()
	if !testing.Verbose() {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	code := m.Run()
	sqlitetest.Cleanup()
	os.Exit(code)
}
