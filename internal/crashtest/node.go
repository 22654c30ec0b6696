//go:build unix

package crashtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	cluster "github.com/ozanturksever/go-cluster"
)

// Environment variables that turn a binary into a test node (see
// MaybeRunNode). Tests and the bench re-execute their own binary with them.
const (
	EnvNode     = "GCL_CRASHTEST_NODE" // "1": run as a node
	EnvNATSURL  = "GCL_CRASHTEST_NATS_URL"
	EnvNodeID   = "GCL_CRASHTEST_NODE_ID"
	EnvPlatform = "GCL_CRASHTEST_PLATFORM"
	EnvLeaseTTL = "GCL_CRASHTEST_LEASE_TTL" // a time.Duration; empty: library default
	EnvLogPath  = "GCL_CRASHTEST_LOG"
	EnvMode     = "GCL_CRASHTEST_MODE"     // "" (singleton AppName), ModeRing or ModeSQLite
	EnvDataDir  = "GCL_CRASHTEST_DATA_DIR" // ModeSQLite: the node's database and state directory
)

// ModeSQLite: the node runs the singleton AppName with WithSQLite on
// SQLitePath(DataDir) and its platform state (replica included) under
// DataDir/state. SIGUSR2 makes it call SyncDB and log KindSynced (or
// KindSyncErr).
const ModeSQLite = "sqlite"

// SQLitePath is the database of a ModeSQLite node whose data directory is
// dataDir (each node has its own file; the leader's is live).
func SQLitePath(dataDir string) string { return filepath.Join(dataDir, "app.db") }

// AppName is the singleton app every node runs.
const AppName = "db"

// Event kinds written to a node's event log. Start and Stop bracket the time
// the node acts as the leader; Killed is appended by the harness after it
// SIGKILLed the node, stamped just before the kill.
const (
	KindReady   = "ready"   // first OnPassive: the node runs and campaigns
	KindStart   = "start"   // OnActive
	KindServing = "serving" // activation finished: IsLeader() is true
	KindStop    = "stop"    // OnPassive after having been active
	// KindLatePassive follows a stop whose OnPassive was called with its
	// context already done: the hook had no time left to stop anything.
	KindLatePassive = "passive-ctx-done"
	KindStepDown    = "stepdown" // StepDown (on SIGUSR1) returned without error
	KindStepErr     = "stepdown-error"
	KindExit        = "exit" // Run returned; the process exits next
	// KindLost: the library ended a term that was serving (Election's
	// IsLeader turned false or its epoch changed), as the node saw it
	// polling; OnPassive (KindStop) should follow or precede it closely.
	KindLost   = "lost"
	KindKilled = "killed"
	// KindSynced: SyncDB (on SIGUSR2) returned without error: every
	// transaction committed to the node's database before the signal is
	// in the log. Its epoch field is the log's transaction number after
	// them (the replication status's Seq). KindSyncErr: SyncDB failed
	// (epoch field: the election epoch).
	KindSynced  = "synced"
	KindSyncErr = "sync-error"
	// KindPaused and KindResumed are appended by the harness around a
	// SIGSTOP (Proc.Pause) and the SIGCONT (Proc.Resume) that ends it: a
	// paused process does nothing, so a term open at the pause ends there
	// as far as acting goes; the node's own stop for it comes after the
	// resume.
	KindPaused  = "paused"
	KindResumed = "resumed"
)

// NodeConfig configures one node process.
type NodeConfig struct {
	NATSURL  string
	NodeID   string
	Platform string
	LeaseTTL time.Duration // 0: library default
	LogPath  string        // event log, appended to
	Mode     string        // "": the singleton app; ModeRing: the ring app; ModeSQLite
	DataDir  string        // ModeSQLite: database and state directory
}

// Env is the environment that makes MaybeRunNode run cfg.
func (c NodeConfig) Env() []string {
	env := []string{
		EnvNode + "=1",
		EnvNATSURL + "=" + c.NATSURL,
		EnvNodeID + "=" + c.NodeID,
		EnvPlatform + "=" + c.Platform,
		EnvLogPath + "=" + c.LogPath,
	}
	if c.LeaseTTL > 0 {
		env = append(env, EnvLeaseTTL+"="+c.LeaseTTL.String())
	}
	if c.Mode != "" {
		env = append(env, EnvMode+"="+c.Mode)
	}
	if c.DataDir != "" {
		env = append(env, EnvDataDir+"="+c.DataDir)
	}
	return env
}

// MaybeRunNode runs a node and exits the process when the environment asks
// for one (EnvNode=1); otherwise it returns at once. Call it first thing in
// TestMain or main.
func MaybeRunNode() {
	if os.Getenv(EnvNode) != "1" {
		return
	}
	cfg := NodeConfig{
		NATSURL:  os.Getenv(EnvNATSURL),
		NodeID:   os.Getenv(EnvNodeID),
		Platform: os.Getenv(EnvPlatform),
		LogPath:  os.Getenv(EnvLogPath),
		Mode:     os.Getenv(EnvMode),
		DataDir:  os.Getenv(EnvDataDir),
	}
	if s := os.Getenv(EnvLeaseTTL); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "crashtest node: %s: %v\n", EnvLeaseTTL, err)
			os.Exit(2)
		}
		cfg.LeaseTTL = d
	}
	go watchParent()
	os.Exit(RunNode(cfg))
}

// watchParent stops the node when the driver that started it is gone (a
// test binary that timed out or panicked), so no node outlives its run.
func watchParent() {
	ppid := os.Getppid()
	for {
		time.Sleep(200 * time.Millisecond)
		if os.Getppid() != ppid {
			fmt.Fprintln(os.Stderr, "crashtest node: driver is gone; stopping")
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			time.Sleep(5 * time.Second) // the NATS server may be gone with the driver
			os.Exit(3)
		}
	}
}

// eventLog appends one line per event and syncs it to disk before
// returning, so that a SIGKILL never loses an event that was written.
type eventLog struct {
	mu   sync.Mutex
	f    *os.File
	node string
}

func (l *eventLog) write(kind string, epoch uint64) {
	now := time.Now()
	line := fmt.Sprintf("%s %s %d %d\n", kind, l.node, epoch, now.UnixNano())
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.WriteString(line); err != nil {
		fmt.Fprintf(os.Stderr, "crashtest node: write event log: %v\n", err)
		return
	}
	if err := l.f.Sync(); err != nil {
		fmt.Fprintf(os.Stderr, "crashtest node: sync event log: %v\n", err)
	}
}

// RunNode runs one node until SIGTERM or SIGINT and returns the process exit
// code. The node runs the singleton app AppName and logs its transitions to
// cfg.LogPath. SIGUSR1 makes it step down if it leads. In ModeSQLite the
// app replicates its database and SIGUSR2 makes the node sync it.
func RunNode(cfg NodeConfig) int {
	if cfg.NATSURL == "" || cfg.NodeID == "" || cfg.Platform == "" || cfg.LogPath == "" {
		fmt.Fprintln(os.Stderr, "crashtest node: NATS URL, node ID, platform and log path are required")
		return 2
	}
	f, err := os.OpenFile(cfg.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "crashtest node: %v\n", err)
		return 2
	}
	defer f.Close()
	ev := &eventLog{f: f, node: cfg.NodeID}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := []cluster.PlatformOption{cluster.WithLogger(logger)}
	if cfg.LeaseTTL > 0 {
		opts = append(opts, cluster.WithLeaseTTL(cfg.LeaseTTL))
	}
	sqlite := cfg.Mode == ModeSQLite
	if sqlite {
		if cfg.DataDir == "" {
			fmt.Fprintln(os.Stderr, "crashtest node: the SQLite mode needs a data directory")
			return 2
		}
		opts = append(opts, cluster.WithStateDir(filepath.Join(cfg.DataDir, "state")))
	}
	// Signals first: a signal that arrives while connecting must not kill
	// the process with the default action.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	p, err := cluster.NewPlatform(cfg.Platform, cfg.NodeID, cfg.NATSURL, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "crashtest node: %v\n", err)
		return 1
	}
	defer p.Close()
	if cfg.Mode == ModeRing {
		return runRingNode(p, ev, sigs)
	}

	appOpts := []cluster.Option{cluster.Singleton()}
	if sqlite {
		appOpts = append(appOpts, cluster.WithSQLite(SQLitePath(cfg.DataDir)))
	}
	app := cluster.NewApp(AppName, appOpts...)
	var (
		mu      sync.Mutex
		active  bool
		epoch   uint64
		started bool
		stopped = make(chan struct{}) // closed by the OnPassive ending the current term
	)
	app.OnActive(func(context.Context) error {
		e := app.Election().Epoch()
		mu.Lock()
		active, epoch = true, e
		stopped = make(chan struct{})
		done := stopped
		mu.Unlock()
		ev.write(KindStart, e)
		go func() {
			// Tell when activation has finished, so that drivers can wait
			// for a settled leader before they act on it.
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				if el := app.Election(); el.IsLeader() && el.Epoch() == e {
					ev.write(KindServing, e)
					break
				}
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
			// Then tell when the library ends the term, whether or not
			// OnPassive follows.
			t.Reset(5 * time.Millisecond)
			for range t.C {
				if el := app.Election(); !el.IsLeader() || el.Epoch() != e {
					ev.write(KindLost, e)
					return
				}
			}
		}()
		return nil
	})
	app.OnPassive(func(ctx context.Context) error {
		late := ctx.Err() != nil
		mu.Lock()
		was, e, first := active, epoch, !started
		active, started = false, true
		if was {
			close(stopped)
		}
		mu.Unlock()
		switch {
		case was:
			ev.write(KindStop, e)
			if late {
				ev.write(KindLatePassive, e)
			}
		case first:
			ev.write(KindReady, 0)
		}
		return nil
	})
	app.Handle("whoami", func(context.Context, []byte) ([]byte, error) {
		return []byte(cfg.NodeID + " " + strconv.FormatUint(app.Election().Epoch(), 10)), nil
	})
	if err := p.Register(app); err != nil {
		fmt.Fprintf(os.Stderr, "crashtest node: %v\n", err)
		return 1
	}

	var onUSR2 func()
	if sqlite {
		onUSR2 = func() {
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer scancel()
			if err := app.SyncDB(sctx); err != nil {
				fmt.Fprintf(os.Stderr, "crashtest node: sync: %v\n", err)
				ev.write(KindSyncErr, app.Election().Epoch())
				return
			}
			st, _ := app.ReplicationStatus()
			ev.write(KindSynced, st.Seq)
		}
	}
	return runUntilSignalled(p, ev, sigs, onUSR2, func() {
		e := app.Election().Epoch()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := app.Election().StepDown(sctx); err != nil {
			fmt.Fprintf(os.Stderr, "crashtest node: step down: %v\n", err)
			ev.write(KindStepErr, e)
			return
		}
		ev.write(KindStepDown, e)
	})
}

// runUntilSignalled runs p until SIGTERM or SIGINT, calls onUSR1 and
// onUSR2 (each in its own goroutine; nil: ignored) on SIGUSR1 and SIGUSR2,
// logs the exit and returns the exit code.
func runUntilSignalled(p *cluster.Platform, ev *eventLog, sigs <-chan os.Signal, onUSR2, onUSR1 func()) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for s := range sigs {
			switch s {
			case syscall.SIGUSR1:
				if onUSR1 != nil {
					go onUSR1()
				}
			case syscall.SIGUSR2:
				if onUSR2 != nil {
					go onUSR2()
				}
			default:
				cancel()
			}
		}
	}()
	err := p.Run(ctx)
	ev.write(KindExit, 0)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "crashtest node: run: %v\n", err)
		return 1
	}
	return 0
}
