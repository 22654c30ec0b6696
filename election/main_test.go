package election

import (
	"os"
	"testing"

	"github.com/ozanturksever/go-cluster/internal/natstest"
)

func TestMain(m *testing.M) {
	natstest.MaybeRunServer() // StartProcCluster's servers are this binary
	os.Exit(m.Run())
}
