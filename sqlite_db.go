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

	_ "modernc.org/sqlite" // registers "sqlite", the driver DB wraps

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
// Only the leader may write: a transaction begun elsewhere fails with
// ErrNotLeader (a standby's file is replaced at its next promotion). With
// SQLiteSynchronous each commit returns once a standby applied it;
// otherwise it returns at once and the commit reaches the standbys
// milliseconds later (SyncDB waits for the log on demand). Open it in
// OnActive and close it in OnPassive. The handle goes through the same
// SQLite library as the replication's capture, which keeps the capture's
// locks intact; do not open the file with another SQLite build in this
// process.
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
	return sql.OpenDB(&leaderConnector{a: a, dsn: u.String()}), nil
}

// sqliteDriver is the driver modernc.org/sqlite registers.
var sqliteDriver = sync.OnceValue(func() driver.Driver {
	db, _ := sql.Open("sqlite", "")
	defer db.Close()
	return db.Driver()
})

// leaderConnector opens connections whose transactions check leadership
// and, in synchronous mode, wait for a standby after commit.
type leaderConnector struct {
	a   *Application
	dsn string
}

func (c *leaderConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := sqliteDriver().Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &leaderConn{Conn: conn, a: c.a}, nil
}

func (c *leaderConnector) Driver() driver.Driver { return sqliteDriver() }

type leaderConn struct {
	driver.Conn
	a    *Application
	inTx bool
}

// writable refuses a write anywhere but on the replication leader.
func (c *leaderConn) writable() error {
	if st, ok := c.a.ReplicationStatus(); !ok || st.Role != "leader" {
		return fmt.Errorf("app %s: %w: this node's database is a standby's", c.a.name, ErrNotLeader)
	}
	return nil
}

// committed runs after a commit: in synchronous mode, until a standby
// has it.
func (c *leaderConn) committed(ctx context.Context) error {
	if !c.a.sqliteSync {
		return nil
	}
	c.a.mu.Lock()
	repl := c.a.repl
	c.a.mu.Unlock()
	if repl == nil {
		return fmt.Errorf("app %s: %w", c.a.name, ErrNotLeader)
	}
	err := repl.repl.Replicate(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, replication.ErrNoStandby):
		return fmt.Errorf("app %s: committed and in the log, but %w", c.a.name, ErrNoStandby)
	default:
		return fmt.Errorf("app %s: committed, replication not confirmed: %w", c.a.name, err)
	}
}

func (c *leaderConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if !opts.ReadOnly {
		if err := c.writable(); err != nil {
			return nil, err
		}
	}
	var tx driver.Tx
	var err error
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.Conn.Begin() //nolint:staticcheck // the driver's fallback
	}
	if err != nil {
		return nil, err
	}
	c.inTx = true
	return &leaderTx{Tx: tx, c: c, ctx: ctx, readOnly: opts.ReadOnly}, nil
}

func (c *leaderConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ex, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	if !c.inTx {
		// An autocommit statement is a transaction of its own.
		if err := c.writable(); err != nil {
			return nil, err
		}
	}
	res, err := ex.ExecContext(ctx, query, args)
	if err == nil && !c.inTx {
		err = c.committed(ctx)
	}
	return res, err
}

func (c *leaderConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := c.Conn.(driver.QueryerContext); ok {
		return q.QueryContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *leaderConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &leaderStmt{Stmt: st, c: c}, nil
}

// leaderStmt guards a prepared statement executed outside a transaction
// like ExecContext does.
type leaderStmt struct {
	driver.Stmt
	c *leaderConn
}

func (s *leaderStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	ex, ok := s.Stmt.(driver.StmtExecContext)
	if !ok {
		return nil, errors.New("driver statement without ExecContext")
	}
	if !s.c.inTx {
		if err := s.c.writable(); err != nil {
			return nil, err
		}
	}
	res, err := ex.ExecContext(ctx, args)
	if err == nil && !s.c.inTx {
		err = s.c.committed(ctx)
	}
	return res, err
}

func (s *leaderStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := s.Stmt.(driver.StmtQueryContext)
	if !ok {
		return nil, errors.New("driver statement without QueryContext")
	}
	return q.QueryContext(ctx, args)
}

func (c *leaderConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

type leaderTx struct {
	driver.Tx
	c        *leaderConn
	ctx      context.Context
	readOnly bool
}

func (t *leaderTx) Commit() error {
	t.c.inTx = false
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	if t.readOnly {
		return nil
	}
	return t.c.committed(t.ctx)
}

func (t *leaderTx) Rollback() error {
	t.c.inTx = false
	return t.Tx.Rollback()
}
