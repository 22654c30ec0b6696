package cluster

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
	"modernc.org/sqlite"

	"github.com/ozanturksever/go-cluster/replication"
)

// SQLiteSynchronous makes every commit through DB wait until a standby has
// applied it durably (its replica fsynced) before it returns: a failover
// then loses no transaction a caller saw committed, not even in a crash.
// It costs a round trip to the standby per commit (milliseconds). Without
// a following standby a commit returns ErrNoStandby after it is in the
// replication log: committed, and safe from the leader's crash, but on no
// second node yet.
func SQLiteSynchronous() Option {
	return func(a *Application) { a.sqliteSync = true }
}

// ErrNoStandby: a synchronous commit found no standby to confirm it.
var ErrNoStandby = errors.New("no standby confirmed the commit")

// DB opens the app's WithSQLite database for a writer in this process.
// Only the leader may write: a write transaction elsewhere is rolled back
// at its commit with ErrNotLeader (a standby's file is replaced at its
// next promotion). With SQLiteSynchronous each commit returns once a
// standby applied it; otherwise it returns at once and reaches the
// standbys milliseconds later (SyncDB waits for the log on demand). The
// handle may live across terms: a pooled connection to a file a
// promotion has since replaced is dropped, not reused. The handle
// goes through the same SQLite library as the replication's capture,
// which keeps the capture's locks intact; do not open the file with
// another SQLite build in this process.
func (a *Application) DB() (*sql.DB, error) {
	a.mu.Lock()
	repl := a.repl
	a.mu.Unlock()
	if repl == nil {
		return nil, fmt.Errorf("app %s: %w: no replicated database (WithSQLite) on a running platform", a.name, ErrInvalidOption)
	}
	path, err := filepath.Abs(a.sqlitePath)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"}
	return sql.OpenDB(&leaderConnector{a: a, dsn: u.String(), path: path}), nil
}

// sqliteDriver is the driver modernc.org/sqlite registers.
var sqliteDriver = sync.OnceValue(func() driver.Driver {
	db, _ := sql.Open("sqlite", "")
	defer db.Close()
	return db.Driver()
})

// leaderConnector opens connections that commit only on the leader and,
// in synchronous mode, wait for a standby after each commit.
type leaderConnector struct {
	a    *Application
	dsn  string
	path string
}

func (c *leaderConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := sqliteDriver().Open(c.dsn)
	if err != nil {
		return nil, err
	}
	hooks, ok := conn.(sqlite.HookRegisterer)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlite driver connection without commit hooks")
	}
	lc := &leaderConn{Conn: conn, a: c.a, path: c.path, ino: inodeOf(c.path)}
	// SQLite calls the hook at every commit of a write transaction,
	// whatever started it (BEGIN by hand, an autocommit INSERT ...
	// RETURNING, a prepared statement): the one place that sees them
	// all. A non-zero return turns the commit into a rollback.
	hooks.RegisterCommitHook(lc.onCommit)
	return lc, nil
}

func (c *leaderConnector) Driver() driver.Driver { return sqliteDriver() }

// leaderConn wraps a driver connection; database/sql uses one from one
// goroutine at a time, so its flags need no lock.
type leaderConn struct {
	driver.Conn
	a       *Application
	path    string
	ino     uint64 // the file the connection opened
	wrote   bool   // a write transaction committed since the last after
	refused bool   // a commit was refused: not the leader
}

// inodeOf is path's inode (0 if it cannot be read).
func inodeOf(path string) uint64 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// IsValid tells database/sql to drop a pooled connection to a file a
// promotion has since replaced (it would read and write the old one).
func (c *leaderConn) IsValid() bool { return inodeOf(c.path) == c.ino }

func (c *leaderConn) onCommit() int32 {
	if st, ok := c.a.ReplicationStatus(); !ok || st.Role != replication.RoleLeader || !c.IsValid() {
		c.refused = true
		return 1
	}
	c.wrote = true
	return 0
}

// after runs when a statement, commit or result set is done: it reports
// a refused commit as ErrNotLeader and, in synchronous mode, waits for a
// standby after a commit.
func (c *leaderConn) after(ctx context.Context, err error) error {
	if c.refused {
		c.refused, c.wrote = false, false
		return fmt.Errorf("app %s: %w: this node's database is a standby's (rolled back)", c.a.name, ErrNotLeader)
	}
	if !c.wrote {
		return err
	}
	c.wrote = false
	if err != nil || !c.a.sqliteSync {
		return err
	}
	c.a.mu.Lock()
	repl := c.a.repl
	c.a.mu.Unlock()
	if repl == nil {
		return fmt.Errorf("app %s: %w", c.a.name, ErrNotLeader)
	}
	switch err := repl.repl.Replicate(ctx); {
	case err == nil:
		return nil
	case errors.Is(err, replication.ErrNoStandby):
		return fmt.Errorf("app %s: committed and in the log, but %w", c.a.name, ErrNoStandby)
	default:
		return fmt.Errorf("app %s: committed, replication not confirmed: %w", c.a.name, err)
	}
}

func (c *leaderConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if !c.IsValid() {
		return nil, driver.ErrBadConn // database/sql retries on a new connection
	}
	if !opts.ReadOnly {
		// Refuse early what the commit hook would refuse at the end.
		if st, ok := c.a.ReplicationStatus(); !ok || st.Role != replication.RoleLeader {
			return nil, fmt.Errorf("app %s: %w: this node's database is a standby's", c.a.name, ErrNotLeader)
		}
	}
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &leaderTx{Tx: tx, c: c, ctx: ctx}, nil
}

func (c *leaderConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if !c.IsValid() {
		return nil, driver.ErrBadConn
	}
	res, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
	return res, c.after(ctx, err)
}

func (c *leaderConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if !c.IsValid() {
		return nil, driver.ErrBadConn
	}
	rows, err := c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
	if err != nil {
		return nil, c.after(ctx, err)
	}
	return &leaderRows{Rows: rows, c: c, ctx: ctx}, nil
}

func (c *leaderConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if !c.IsValid() {
		return nil, driver.ErrBadConn
	}
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &leaderStmt{Stmt: st, c: c}, nil
}

func (c *leaderConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

type leaderStmt struct {
	driver.Stmt
	c *leaderConn
}

func (s *leaderStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	res, err := s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
	return res, s.c.after(ctx, err)
}

func (s *leaderStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, s.c.after(ctx, err)
	}
	return &leaderRows{Rows: rows, c: s.c, ctx: ctx}, nil
}

// leaderRows finishes an autocommit statement that returns rows (INSERT
// ... RETURNING commits when its rows are done).
type leaderRows struct {
	driver.Rows
	c   *leaderConn
	ctx context.Context
}

func (r *leaderRows) Close() error {
	return r.c.after(r.ctx, r.Rows.Close())
}

type leaderTx struct {
	driver.Tx
	c   *leaderConn
	ctx context.Context
}

func (t *leaderTx) Commit() error {
	return t.c.after(t.ctx, t.Tx.Commit())
}
