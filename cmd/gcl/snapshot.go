package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"
	_ "modernc.org/sqlite" // the integrity check of a restored database

	"github.com/ozanturksever/go-cluster/agent"
	"github.com/ozanturksever/go-cluster/replication"
	"github.com/ozanturksever/go-cluster/replication/apply"
	"github.com/ozanturksever/go-cluster/replication/snapstore"
)

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "take, list and restore snapshots of an app's SQLite database",
		Description: `An app with an sqlite block (WithSQLite in Go) has its database replicated
from its leader to its standbys through a log in JetStream. The leader also
copies the whole database to the app's snapshot store every
snapshot_interval, keeping as many copies as cover the retention; a standby
that starts or falls behind begins from the newest. These commands take a
snapshot now, list them and restore one to a file.`,
		Subcommands: []*cli.Command{
			{
				Name: "create", HideHelpCommand: true, Usage: "ask the leader for a snapshot now and wait until it is stored", ArgsUsage: "APP",
				UsageText: "gcl snapshot create database\n   gcl snapshot create database -timeout 30m -json",
				Description: `Asks the app's leader to copy its database to the snapshot store now, then
waits until the leader has stored it, showing progress on stderr, and
prints it. The copy is consistent (one read
transaction); the app goes on writing meanwhile.`,
				Flags:  appFlags(&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "give up waiting after `DURATION`"}),
				Action: runSnapshotCreate,
			},
			{
				Name: "list", Aliases: []string{"ls"}, HideHelpCommand: true, Usage: "list the stored snapshots, oldest first", ArgsUsage: "APP",
				UsageText: "gcl snapshot list database\n   gcl snapshot list database -json",
				Flags:     appFlags(), Action: runSnapshotList,
			},
			{
				Name: "restore", HideHelpCommand: true, Usage: "download a snapshot to a database file", ArgsUsage: "APP [SNAPSHOT]",
				UsageText: `gcl snapshot restore database -to /tmp/database.db
   gcl snapshot restore database snap-00000000000000000057-00000000000000000002 -to ./copy.db
   gcl snapshot restore database -to /srv/db/app.db -force
   gcl snapshot restore database snap-00000000000000000057-00000000000000000002 -cluster`,
				Description: `Downloads the snapshot (the newest without SNAPSHOT) next to PATH, checks it
against its SHA-256, runs PRAGMA integrity_check on it and only then moves
it to PATH, atomically. An existing PATH (or a PATH-wal, -shm or -journal
left next to it) is refused unless -force: then the stale -wal, -shm and
-journal are removed first, since SQLite would apply them to the restored
file. Stop whatever uses PATH before forcing. Progress goes to stderr.

With -cluster instead of -to, the snapshot becomes the app's database on
every node: the leader stops shipping, records the snapshot in the log as
the new state and steps down; the next leader starts from it and the
standbys follow. Everything written after the snapshot was taken is lost,
so it asks for the app's name to be typed (or -yes, for scripts), and
waits until a leader runs on the restored database.`,
				Flags: appFlags(
					&cli.StringFlag{Name: "to", Usage: "restore to the database file `PATH`"},
					&cli.BoolFlag{Name: "force", Usage: "replace an existing PATH"},
					&cli.BoolFlag{Name: "cluster", Usage: "restore into the running cluster: replaces the app's data everywhere"},
					&cli.BoolFlag{Name: "yes", Usage: "with -cluster: do not ask for confirmation"},
					&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "with -cluster: give up waiting after `DURATION`"}),
				Action: runSnapshotRestore,
			},
		},
	}
}

// snapshotView is a stored snapshot as the snapshot commands print it.
type snapshotView struct {
	Name      string    `json:"name"`
	Seq       uint64    `json:"seq"`
	Epoch     uint64    `json:"epoch"`
	Cursor    uint64    `json:"cursor"` // the log's stream sequence it stands for
	Size      int64     `json:"size"`
	PageSize  uint32    `json:"page_size"`
	PageCount uint32    `json:"page_count"`
	SHA256    string    `json:"sha256"`
	LogBytes  uint64    `json:"log_bytes"`
	Reset     bool      `json:"reset,omitempty"`
	Node      string    `json:"node"`
	Created   time.Time `json:"created"`
}

func viewSnapshot(m snapstore.Meta) snapshotView {
	return snapshotView{
		Name: m.Name, Seq: m.Seq, Epoch: m.Epoch, Cursor: m.Cursor, Size: m.Size(),
		PageSize: m.PageSize, PageCount: m.PageCount, SHA256: hex.EncodeToString(m.SHA256[:]),
		LogBytes: m.Bytes, Reset: m.Reset, Node: m.Node, Created: m.Created,
	}
}

// openSnapshots opens the app's snapshot store without changing it: it
// must exist (a WithSQLite app ran on the platform), and is opened with
// the replica count it has, since snapstore.Open updates the bucket to the
// count it is given.
func openSnapshots(ctx context.Context, s *session, app string) (*snapstore.Store, error) {
	bucket := s.store.Layout().SnapshotBucket(app)
	// Look first: the CLI must not create a bucket (snapstore.Open
	// would, and leaves an existing one as it is).
	if _, err := s.js.ObjectStore(ctx, bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, cli.Exit(fmt.Sprintf("app %q has no snapshot store: it has no sqlite block, or has not run yet", app), exitFailure)
	} else if err != nil {
		return nil, fmt.Errorf("snapshot store of %s: %w", app, err)
	}
	return snapstore.Open(ctx, s.js, bucket, 1)
}

// connectSnapshots connects with the command's flags and opens app's
// snapshot store.
func connectSnapshots(ctx context.Context, c *cli.Context, app string) (*session, *snapstore.Store, error) {
	s, err := connectFromFlags(c)
	if err != nil {
		return nil, nil, err
	}
	store, err := openSnapshots(ctx, s, app)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, store, nil
}

// progressf writes a progress line to stderr (stdout keeps the result).
func progressf(c *cli.Context, format string, args ...any) {
	fmt.Fprintf(c.App.ErrWriter, format+"\n", args...)
}

func runSnapshotCreate(c *cli.Context) error {
	name, s, err := appSession(c)
	if err != nil {
		return err
	}
	defer s.Close()
	timeout := c.Duration("timeout")
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	store, err := openSnapshots(ctx, s, name)
	if err != nil {
		return err
	}
	before, err := store.Latest(ctx, 0)
	if err != nil && !errors.Is(err, snapstore.ErrNoSnapshot) {
		return err
	}
	nodes, err := agent.ReplicationNodes(ctx, s.js, s.store.Layout(), name)
	if err != nil {
		return err
	}
	leader := ""
	for _, n := range nodes {
		if n.Role == replication.RoleLeader || n.Role == replication.RolePromoting {
			leader = n.Node
			break
		}
	}
	if leader == "" {
		return cli.Exit(fmt.Sprintf("app %q has no replication leader to take a snapshot (see gcl app status %s)", name, name), exitFailure)
	}
	started := time.Now()
	newest := "none"
	if before.Name != "" {
		newest = fmt.Sprintf("%s, seq %d", before.Name, before.Seq)
	}
	progressf(c, "==> asking %s, the leader of %s, for a snapshot (newest so far: %s)", leader, name, newest)
	type result struct {
		m   snapstore.Meta
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := replication.RequestSnapshot(ctx, s.nc, s.store.Layout().ReplicationSubject(name))
		done <- result{m, err}
	}()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			switch {
			case errors.Is(res.err, replication.ErrNoLeader):
				return cli.Exit(fmt.Sprintf("app %q has no replication leader to take a snapshot (see gcl app status %s)", name, name), exitFailure)
			case res.err != nil && ctx.Err() != nil && c.Context.Err() == nil:
				return cli.Exit(fmt.Sprintf("no new snapshot of %s within %s; the leader may still be uploading one (gcl snapshot list %s shows when it is stored)", name, timeout, name), exitFailure)
			case res.err != nil:
				return res.err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, viewSnapshot(res.m))
			}
			progressf(c, "==> stored in %s", time.Since(started).Round(time.Millisecond))
			fmt.Fprintf(c.App.Writer, "%s  seq %d  epoch %d  %s  by %s\n", res.m.Name, res.m.Seq, res.m.Epoch, humanBytes(res.m.Size()), res.m.Node)
			return nil
		case now := <-tick.C:
			progressf(c, "    waiting for the leader to copy and upload the database (%s)", now.Sub(started).Round(time.Second))
		}
	}
}

func runSnapshotList(c *cli.Context) error {
	name, s, err := appSession(c)
	if err != nil {
		return err
	}
	defer s.Close()
	store, err := openSnapshots(c.Context, s, name)
	if err != nil {
		return err
	}
	list, err := store.List(c.Context)
	if err != nil {
		return err
	}
	views := make([]snapshotView, 0, len(list))
	for _, m := range list {
		views = append(views, viewSnapshot(m))
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, views)
	}
	if len(views) == 0 {
		fmt.Fprintf(c.App.Writer, "app %s has no snapshots\n", name)
		return nil
	}
	return writeSnapshotTable(c.App.Writer, views)
}

// writeSnapshotTable prints snapshots as `snapshot list` does.
func writeSnapshotTable(w io.Writer, views []snapshotView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSEQ\tEPOCH\tSIZE\tCREATED\tNODE")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", v.Name, v.Seq, v.Epoch, humanBytes(v.Size), v.Created.Local().Format(time.DateTime), v.Node)
	}
	return tw.Flush()
}

// restoreResult is what `snapshot restore -json` prints.
type restoreResult struct {
	App       string       `json:"app"`
	Snapshot  snapshotView `json:"snapshot"`
	Path      string       `json:"path"`
	Integrity string       `json:"integrity"`
	TookMS    float64      `json:"took_ms"`
}

func runSnapshotRestore(c *cli.Context) error {
	app, args := c.String("app"), c.Args().Slice()
	if app == "" && len(args) > 0 {
		app, args = args[0], args[1:]
	}
	if app == "" || len(args) > 1 {
		return cli.Exit("usage: gcl snapshot restore APP [SNAPSHOT] -to PATH", exitFailure)
	}
	if c.Bool("cluster") {
		if c.String("to") != "" {
			return cli.Exit("-cluster and -to exclude each other", exitFailure)
		}
		return restoreIntoCluster(c, app, args)
	}
	if c.String("to") == "" {
		return cli.Exit("give the database file to restore to: -to PATH", exitFailure)
	}
	dst, err := filepath.Abs(c.String("to"))
	if err != nil {
		return err
	}
	stale, err := checkRestoreTarget(dst, c.Bool("force"))
	if err != nil {
		return cli.Exit(err.Error(), exitFailure)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, store, err := connectSnapshots(ctx, c, app)
	if err != nil {
		return err
	}
	defer s.Close()
	name := ""
	if len(args) == 1 {
		name = args[0]
	} else {
		m, err := store.Latest(ctx, 0)
		if errors.Is(err, snapstore.ErrNoSnapshot) {
			return cli.Exit(fmt.Sprintf("app %q has no snapshots", app), exitFailure)
		}
		if err != nil {
			return err
		}
		name = m.Name
	}
	started := time.Now()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return cli.Exit(err.Error(), exitFailure)
	}
	// Next to PATH, so that the final move is a rename on one file system.
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".restore-*")
	if err != nil {
		return cli.Exit(err.Error(), exitFailure)
	}
	defer os.RemoveAll(tmp)

	progressf(c, "==> restoring %s of %s to %s", name, app, dst)
	meta, err := restoreSnapshot(ctx, c, store, name, tmp)
	if errors.Is(err, snapstore.ErrNoSnapshot) {
		return cli.Exit(fmt.Sprintf("app %q has no snapshot %q (see gcl snapshot list %s)", app, name, app), exitFailure)
	}
	if err != nil {
		return cli.Exit(fmt.Sprintf("restore %s: %v", name, err), exitFailure)
	}
	restored := filepath.Join(tmp, apply.DBName)
	progressf(c, "    %s downloaded and its SHA-256 verified; running PRAGMA integrity_check", humanBytes(meta.Size()))
	msgs, err := integrityCheck(ctx, restored)
	if err != nil {
		return cli.Exit(fmt.Sprintf("integrity check of %s: %v", name, err), exitFailure)
	}
	if !integrityOK(msgs) {
		return cli.Exit(fmt.Sprintf("snapshot %s failed its integrity check; nothing written to %s:\n  %s", name, dst, strings.Join(msgs, "\n  ")), exitFailure)
	}
	for _, f := range stale {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return cli.Exit(fmt.Sprintf("remove %s: %v", f, err), exitFailure)
		}
		progressf(c, "    removed %s", f)
	}
	if err := os.Rename(restored, dst); err != nil {
		return cli.Exit(err.Error(), exitFailure)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return cli.Exit(err.Error(), exitFailure)
	}
	took := time.Since(started)
	if c.Bool("json") {
		return writeJSON(c.App.Writer, restoreResult{
			App: app, Snapshot: viewSnapshot(meta), Path: dst, Integrity: "ok", TookMS: float64(took.Microseconds()) / 1000,
		})
	}
	progressf(c, "==> done in %s", took.Round(time.Millisecond))
	fmt.Fprintf(c.App.Writer, "restored %s (seq %d, %s) to %s: integrity ok\n", meta.Name, meta.Seq, humanBytes(meta.Size()), dst)
	return nil
}

// restoreSnapshot downloads the snapshot into the replica directory dir
// (checked against its size and SHA-256), printing how far it got every
// few seconds.
func restoreSnapshot(ctx context.Context, c *cli.Context, store *snapstore.Store, name, dir string) (snapstore.Meta, error) {
	type result struct {
		m   snapstore.Meta
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, m, err := store.Restore(ctx, name, dir)
		if err == nil {
			err = rep.Close()
		}
		done <- result{m, err}
	}()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			return r.m, r.err
		case <-tick.C:
			progressf(c, "    downloading: %s so far", humanBytes(dirSize(dir)))
		}
	}
}

// dirSize adds up the sizes of the files in dir.
func dirSize(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}

// checkRestoreTarget refuses to restore over a database (or over the
// write-ahead log, shared memory or rollback journal of one, which SQLite
// would apply to the restored file) unless forced, and returns those to
// remove before the restored file moves in.
func checkRestoreTarget(path string, force bool) (stale []string, err error) {
	info, err := os.Lstat(path)
	switch {
	case err == nil && info.IsDir():
		return nil, fmt.Errorf("%s is a directory", path)
	case err == nil && !force:
		return nil, fmt.Errorf("%s exists; give -force to replace it (stop whatever uses it first)", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		f := path + suffix
		_, err := os.Lstat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !force {
			return nil, fmt.Errorf("%s exists: SQLite would apply it to the restored database; give -force to remove it", f)
		}
		stale = append(stale, f)
	}
	return stale, nil
}

// integrityCheck runs PRAGMA integrity_check on the database file at path,
// read-only (nothing is written next to it), and returns its messages.
func integrityCheck(ctx context.Context, path string) ([]string, error) {
	u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&immutable=1"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}

func integrityOK(msgs []string) bool { return len(msgs) == 1 && msgs[0] == "ok" }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// humanBytes renders a size in binary units: "512 B", "8.0 KiB", "1.5 GiB".
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, 0
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	for v >= 1024 && unit < len(units)-1 {
		v /= 1024
		unit++
	}
	return fmt.Sprintf("%.1f %s", v, units[unit])
}

// restoreIntoCluster serves `snapshot restore -cluster`.
func restoreIntoCluster(c *cli.Context, app string, args []string) error {
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	s, store, err := connectSnapshots(ctx, c, app)
	if err != nil {
		return err
	}
	defer s.Close()
	var snap snapstore.Meta
	if len(args) == 1 {
		m, rc, err := store.Get(ctx, args[0])
		if err != nil {
			return cli.Exit(err.Error(), exitFailure)
		}
		rc.Close()
		snap = m
	} else if snap, err = store.Latest(ctx, 0); err != nil {
		return cli.Exit(fmt.Sprintf("app %q: %v", app, err), exitFailure)
	}
	if !c.Bool("yes") {
		fmt.Fprintf(c.App.ErrWriter, "This replaces the database of %s on every node with %s (transaction %d, %s, taken %s).\n"+
			"Everything written since is lost. Type the app's name to go on: ", app, snap.Name, snap.Seq, humanBytes(snap.Size()), snap.Created.Format(time.RFC3339))
		line, _ := bufio.NewReader(c.App.Reader).ReadString('\n')
		if strings.TrimSpace(line) != app {
			return cli.Exit("not confirmed; nothing changed", exitFailure)
		}
	}
	started := time.Now()
	progressf(c, "==> asking the leader of %s to restore %s", app, snap.Name)
	m, err := replication.RequestRestore(ctx, s.nc, s.store.Layout().ReplicationSubject(app), snap.Name)
	if errors.Is(err, replication.ErrNoLeader) {
		return cli.Exit(fmt.Sprintf("app %q has no replication leader: start the job first", app), exitFailure)
	}
	if err != nil {
		return err
	}
	progressf(c, "==> recorded as transaction %d; waiting for a leader on the restored database", m.Seq)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		nodes, err := agent.ReplicationNodes(ctx, s.js, s.store.Layout(), app)
		if err == nil {
			for _, n := range nodes {
				if n.Role == replication.RoleLeader && n.Epoch > m.Epoch && n.Seq >= m.Seq {
					if c.Bool("json") {
						return writeJSON(c.App.Writer, map[string]any{"app": app, "snapshot": viewSnapshot(snap), "restored_as": viewSnapshot(m), "leader": n.Node})
					}
					fmt.Fprintf(c.App.Writer, "%s restored into %s as transaction %d; %s leads (%s)\n", snap.Name, app, m.Seq, n.Node, time.Since(started).Round(time.Millisecond))
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return cli.Exit(fmt.Sprintf("the restore is recorded, but no leader runs on it after %s (gcl app status %s)", c.Duration("timeout"), app), exitFailure)
		case <-tick.C:
		}
	}
}
