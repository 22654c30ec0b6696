// Package capture captures the committed transactions of a live SQLite
// database in WAL mode, written by another process (or by other
// connections of this one), from its files, the way Litestream does: it
// reads the -wal file, and holds the WAL so that SQLite cannot recycle it
// before every committed frame has been read.
//
// # How the WAL is held
//
// SQLite overwrites a WAL from its start (a "restart", which gives the
// generation a new salt) only when every frame of it has been copied into
// the database file ("backfilled") by a checkpoint, and a checkpoint
// copies a frame only when no reader still needs the database without it.
// So one open read transaction, in a connection of the Capturer's own (the
// "pin"), protects every frame committed after it began:
//
//   - A reader that began while the WAL held frames not yet backfilled
//     holds a read mark at the WAL's end (read lock i > 0): checkpoints
//     copy nothing after its mark, and no restart can happen while it
//     holds the lock (a restart takes all of the read locks 1..N).
//   - A reader that began when the WAL was wholly backfilled (or empty)
//     holds read lock 0 and reads the database file only: a checkpoint
//     must lock read lock 0 to copy anything, so none of the frames
//     committed after the reader began can be backfilled, so none of them
//     can be overwritten. (This reader does allow a restart as long as
//     nothing new was committed, which loses nothing.)
//
// The invariant, then: every frame committed before the pin began has
// been read by the Capturer (into its queue, if Next has not returned it
// yet), and the pin has been held ever since; so every committed frame not
// read yet is protected. It is kept in two ways:
//
//   - Hand-off (no lock): with pin A held, a second pin B begins, the
//     Capturer reads the WAL to its end, and A ends. What was committed
//     before B began was either read before (committed before A began) or
//     committed after A began, so still in the WAL while A is held: the
//     read after B began finds it. The pin moves forward without stopping
//     the app.
//   - Barrier: a third connection holds the write lock (BEGIN IMMEDIATE),
//     so that nothing commits while the Capturer reads the WAL to its end,
//     lets go of the pin, checkpoints and takes the pin again. Only this
//     can leave the pin on a wholly backfilled WAL (read lock 0), which is
//     what lets the app's next write restart the WAL; and only this aligns
//     a snapshot with a Position exactly.
//
// Under the invariant a new WAL generation (new salt, or a WAL truncated to
// nothing by the app's TRUNCATE checkpoint) can only appear when every
// committed frame of the old one was read: the Capturer follows it. Where
// the invariant was not kept (a pin was lost, or the Capturer resumes a
// Position from an earlier run and the WAL restarted since), a new
// generation means frames may have been missed, and Next returns
// ErrLostContinuity: the caller must take a snapshot (Snapshot) and go on
// from it.
//
// # Checkpoints
//
// The pin stops the WAL from restarting, so the WAL grows until the
// Capturer lets go: Checkpoint (run by Next when it has caught up and the
// WAL grew by WithCheckpointThreshold) does it in three steps:
//
//  1. Hand-off: the pin moves to the end of the WAL.
//  2. A PASSIVE checkpoint copies the frames up to the pin's mark into the
//     database file while the app goes on writing. Steps 1 and 2 are
//     repeated (up to 4 times) while the app committed more than 256 KiB
//     meanwhile, so that little is left for step 3.
//  3. Barrier: read to the end, let go of the pin, PASSIVE checkpoint of
//     what was committed during step 2 (little), take the pin again.
//     SQLite's count of frames in the WAL (the checkpoint's "log") must be
//     the number of frames the Capturer read: otherwise its reading and
//     SQLite's disagree and continuity cannot be trusted
//     (ErrLostContinuity). The new pin begins on a wholly backfilled WAL
//     (read lock 0): the app's next write restarts the WAL, and the
//     Capturer follows into the new generation.
//
// The barrier takes the write lock between two of the app's transactions:
// SQLite's busy handler sleeps milliseconds between attempts, which loses
// every time against a writer that commits back to back, so the Capturer
// tries again at once after each write to the WAL, and at short intervals,
// until WithBarrierTimeout. When it cannot, steps 1 and 2 have still
// copied the WAL into the database; the restart waits for a later try
// (tries back off up to 5 s).
//
// The app's writers wait while a barrier holds the write lock (the time
// to read and to checkpoint what was committed since step 2, the
// checkpoint's fsyncs included: a few milliseconds): the app must use a
// busy timeout, and should begin write transactions with BEGIN IMMEDIATE
// (a deferred transaction that read first and then writes gets
// SQLITE_BUSY at once, without its busy handler, if the write lock is
// held).
//
// The app's own checkpoints: PASSIVE and FULL copy frames up to the pin's
// mark (FULL waits, up to the app's busy timeout, for the pin to move on,
// then returns busy); RESTART and TRUNCATE wait for the pin likewise and
// return busy, except right after step 3 (the pin on read lock 0 and
// nothing new in the WAL), when they succeed and TRUNCATE empties the
// file: nothing is lost then, and the Capturer follows.
//
// # Files and locks
//
// POSIX advisory locks belong to a process, and closing any descriptor of
// a file drops all of the process's locks on it. The Capturer therefore
// opens the database (and so its -shm) only through its three long-lived
// SQLite connections, and opens the -wal file (on which SQLite takes no
// lock) once, reading it with pread for its whole life. Code elsewhere in
// the same process must not open and close the database or -shm file
// either (modernc.org/sqlite's OFDLocking protects the database file's
// locks from that, not the -shm's).
package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"modernc.org/sqlite"

	"github.com/ozanturksever/go-cluster/replication/walfile"
)

// Errors; test with errors.Is.
var (
	// ErrLostContinuity: the Capturer cannot prove that the transactions
	// it returns continue the ones it returned before (the WAL restarted
	// or shrank while frames may have been unread). The caller takes a
	// snapshot (Snapshot) and continues from its Position.
	ErrLostContinuity = errors.New("capture: continuity with the WAL lost; a snapshot is needed")
	// ErrBarrierTimeout: the write lock could not be taken in time (the
	// app held it, or committed back to back without a gap).
	ErrBarrierTimeout = errors.New("capture: write lock not free in time")
	// ErrClosed: the Capturer was closed.
	ErrClosed = errors.New("capture: closed")
)

type config struct {
	busyTimeout    time.Duration
	barrierTimeout time.Duration
	threshold      int64
	minInterval    time.Duration
	maxBackoff     time.Duration
	pollInterval   time.Duration
	safetyPoll     time.Duration
	inotify        bool
	resume         *walfile.Position
}

// Option configures Open.
type Option func(*config)

// WithBusyTimeout is how long Open, Snapshot and Checkpoint try to take
// the write lock for a barrier. Default 5 s.
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

// WithBarrierTimeout is how long an automatic checkpoint (run by Next)
// tries to take the write lock; Next returns nothing meanwhile. Default
// 100 ms.
func WithBarrierTimeout(d time.Duration) Option { return func(c *config) { c.barrierTimeout = d } }

// WithCheckpointThreshold makes Next run Checkpoint when it has caught up
// and at least n bytes were committed to the WAL since the last automatic
// checkpoint began; 0 turns automatic checkpoints off. Default 4 MiB.
func WithCheckpointThreshold(n int64) Option { return func(c *config) { c.threshold = n } }

// WithPollInterval is how often Next looks at the WAL when inotify is not
// used. Default 5 ms.
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.pollInterval = d } }

// WithoutInotify makes Next poll instead of waiting for inotify events.
func WithoutInotify() Option { return func(c *config) { c.inotify = false } }

// WithResume starts from p, a Position a Capturer of the same database
// reached before (the end of the last transaction the caller kept),
// instead of the end of the WAL. If the WAL is no longer the generation of
// p, or p is not a transaction boundary in it, Next returns
// ErrLostContinuity.
func WithResume(p walfile.Position) Option { return func(c *config) { c.resume = &p } }

// CheckpointResult is what SQLite's wal_checkpoint returned in the last
// step of a Checkpoint.
type CheckpointResult struct {
	Busy         bool
	Log          int // frames in the WAL, -1 if the checkpoint could not run
	Checkpointed int // frames backfilled, -1 likewise
}

// Stats are counters for monitoring and tests.
type Stats struct {
	Txns, Frames     int64 // returned by Next
	Generations      int64 // WAL generations followed after the first
	Handoffs         int64
	Barriers         int64         // write locks taken
	BarrierTimeouts  int64         // write locks not taken in time
	BarrierWaitMax   time.Duration // longest wait for the write lock
	BarrierTotal     time.Duration // time the write lock was held
	BarrierMax       time.Duration
	Checkpoints      int64 // Checkpoint cycles that ended on a restartable WAL
	CheckpointsShort int64 // cycles whose barrier failed (steps 1 and 2 done)
	LastCheckpoint   CheckpointResult
	LastError        string // the last error of an automatic checkpoint
}

// Capturer captures the committed transactions of one database. Its
// methods are safe for concurrent use; Next is meant for one consumer.
type Capturer struct {
	cfg     config
	path    string
	walPath string

	db   *sql.DB
	pins [2]*sql.Conn // one holds the read transaction; both during a hand-off
	cur  int          // index of the pin in pins
	bar  *sql.Conn    // takes the write lock for barriers; runs checkpoints
	// snap copies the database for Snapshot inside a read transaction of
	// its own, begun under a barrier, so that the copy (seconds for a big
	// database) runs without c.mu: Next goes on meanwhile.
	snap   *sql.Conn
	snapMu sync.Mutex // one Snapshot at a time

	wal    *os.File
	walIno uint64
	notify chan struct{}
	stopW  func()
	closed chan struct{}

	mu          sync.Mutex
	isClosed    bool
	rd          *walfile.Reader // the generation being read; nil: none (empty WAL)
	pos         walfile.Position
	queue       []walfile.Txn
	pinned      bool  // the invariant holds (see the package doc)
	lost        error // sticky until Snapshot
	pageSize    uint32
	nextCkpt    time.Time
	ckptMark    walfile.Position // the WAL's end when the last automatic checkpoint began
	backoff     time.Duration
	lastSize    int64
	pending     int64     // the Reader's pending tail when last read
	pendingAt   time.Time // when it last changed
	lastScanDur time.Duration
	stats       Stats
}

// Open opens the database at path for capture: it puts it in WAL mode if
// it is not, opens the Capturer's connections, pins the WAL and positions
// the Capturer at the end of what is committed now (or at WithResume's
// Position). The Capturer returns the transactions committed after that
// Position; to replicate from it, take the base with Snapshot.
func Open(ctx context.Context, path string, opts ...Option) (*Capturer, error) {
	cfg := config{
		busyTimeout:    5 * time.Second,
		barrierTimeout: 100 * time.Millisecond,
		threshold:      4 << 20,
		minInterval:    100 * time.Millisecond,
		maxBackoff:     5 * time.Second,
		pollInterval:   5 * time.Millisecond,
		safetyPoll:     250 * time.Millisecond,
		inotify:        true,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("capture: path %q: '?' and '#' are not supported", path)
	}
	c := &Capturer{
		cfg:     cfg,
		path:    path,
		walPath: path + "-wal",
		notify:  make(chan struct{}, 1),
		closed:  make(chan struct{}),
	}
	if err := c.open(ctx); err != nil {
		c.shutdown()
		return nil, err
	}
	return c, nil
}

func (c *Capturer) open(ctx context.Context) error {
	dsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)", c.path, c.cfg.busyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("capture: open %s: %w", c.path, err)
	}
	c.db = db
	// Exactly four connections, held for the Capturer's life: the
	// database file and its -shm are never opened and closed again.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	for _, p := range []**sql.Conn{&c.pins[0], &c.pins[1], &c.bar, &c.snap} {
		if *p, err = db.Conn(ctx); err != nil {
			return fmt.Errorf("capture: open %s: %w", c.path, err)
		}
		// Keep the -wal file when the last connection closes, so that
		// its inode (our descriptor) stays the WAL's; harmless otherwise.
		if err := (*p).Raw(func(dc any) error {
			fc, ok := dc.(sqlite.FileControl)
			if !ok {
				return errors.New("driver connection has no FileControl")
			}
			_, err := fc.FileControlPersistWAL("main", 1)
			return err
		}); err != nil {
			return fmt.Errorf("capture: SQLITE_FCNTL_PERSIST_WAL: %w", err)
		}
	}
	// The barrier does its own retrying (see lockLocked).
	if _, err := c.bar.ExecContext(ctx, "PRAGMA busy_timeout=0"); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	var mode string
	if err := c.bar.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("capture: journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("capture: %s: journal mode %q, not WAL", c.path, mode)
	}
	var ps int64
	if err := c.bar.QueryRowContext(ctx, "PRAGMA page_size").Scan(&ps); err != nil {
		return fmt.Errorf("capture: page size: %w", err)
	}
	c.pageSize = uint32(ps)
	// A read transaction opens the WAL (creating an empty -wal file if
	// need be).
	if err := pin(ctx, c.pins[c.cur]); err != nil {
		return err
	}
	if err := c.openWAL(); err != nil {
		return err
	}
	if c.cfg.inotify {
		if stop, err := watch(c.walPath, c.notify); err == nil {
			c.stopW = stop
		} else {
			c.cfg.inotify = false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The first barrier establishes the invariant.
	return c.barrierLocked(ctx, c.cfg.busyTimeout, false, func(ctx context.Context) error {
		if err := c.positionLocked(c.cfg.resume); err != nil {
			return err
		}
		return c.repinLocked(ctx)
	})
}

func (c *Capturer) openWAL() error {
	f, err := os.Open(c.walPath)
	if err != nil {
		return fmt.Errorf("capture: open WAL: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("capture: stat WAL: %w", err)
	}
	if c.wal != nil {
		c.wal.Close()
	}
	c.wal, c.walIno = f, inode(fi)
	return nil
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// pin begins a read transaction on conn. Neither pin nor unpin may be
// cut short by a context (a pin half taken, or one not let go, breaks the
// bookkeeping of the invariant), so they run without ctx's cancellation.
func pin(ctx context.Context, conn *sql.Conn) error {
	ctx = context.WithoutCancel(ctx)
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		// A transaction left open (an unpin that failed): end it, once.
		conn.ExecContext(ctx, "ROLLBACK")
		if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
			return fmt.Errorf("capture: pin: %w", err)
		}
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		conn.ExecContext(ctx, "ROLLBACK")
		return fmt.Errorf("capture: pin: %w", err)
	}
	return nil
}

// unpin ends the read transaction on conn. An error is "no transaction is
// active" after a failed pin; a real failure shows in the next BEGIN.
func unpin(ctx context.Context, conn *sql.Conn) {
	conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
}

// repinLocked, under a barrier and after everything committed was read,
// moves the pin to the present: the invariant holds after it.
func (c *Capturer) repinLocked(ctx context.Context) error {
	c.pinned = false
	unpin(ctx, c.pins[c.cur])
	if err := pin(ctx, c.pins[c.cur]); err != nil {
		return err
	}
	c.pinned = true
	return nil
}

// handoffLocked moves the pin to the present without a lock: the other
// connection begins a read transaction, the WAL is read to its end (into
// the queue), and the old pin ends. See the package doc for why this
// keeps the invariant.
func (c *Capturer) handoffLocked(ctx context.Context) error {
	next := c.pins[1-c.cur]
	if err := pin(ctx, next); err != nil {
		return err
	}
	if err := c.drainLocked(); err != nil {
		unpin(ctx, next)
		return err
	}
	unpin(ctx, c.pins[c.cur])
	c.cur = 1 - c.cur
	c.stats.Handoffs++
	return nil
}

// drainLocked reads every committed transaction into the queue.
func (c *Capturer) drainLocked() error {
	for {
		txn, ok, err := c.readLocked()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		c.queue = append(c.queue, txn)
	}
}

func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == 5 // SQLITE_BUSY
}

// lockLocked takes the write lock on c.bar (BEGIN IMMEDIATE), trying
// again at once after each write to the WAL (the app's commit ends with
// one, and releases the lock right after) and every 100 µs, until timeout.
func (c *Capturer) lockLocked(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	deadline := start.Add(timeout)
	var timer *time.Timer
	woken := false
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if woken {
			// Next waits for this wake-up: give it back.
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
		c.stats.BarrierWaitMax = max(c.stats.BarrierWaitMax, time.Since(start))
	}()
	for {
		for range 20 {
			_, err := c.bar.ExecContext(ctx, "BEGIN IMMEDIATE")
			if err == nil {
				return nil
			}
			if !isBusy(err) {
				c.bar.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
				return fmt.Errorf("capture: barrier: %w", err)
			}
		}
		if time.Now().After(deadline) {
			c.stats.BarrierTimeouts++
			return fmt.Errorf("%w (%v)", ErrBarrierTimeout, timeout)
		}
		if timer == nil {
			timer = time.NewTimer(100 * time.Microsecond)
		} else {
			timer.Reset(100 * time.Microsecond)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.notify:
			woken = true
		case <-timer.C:
		}
	}
}

// barrierLocked holds the write lock (so that nothing commits), reads the
// WAL to its last commit into the queue if drain, and runs fn.
func (c *Capturer) barrierLocked(ctx context.Context, timeout time.Duration, drain bool, fn func(ctx context.Context) error) error {
	if err := c.lockLocked(ctx, timeout); err != nil {
		return err
	}
	start := time.Now()
	bg := context.WithoutCancel(ctx)
	defer func() {
		if _, err := c.bar.ExecContext(bg, "ROLLBACK"); err != nil {
			// The app's writers would wait for ever: try once more.
			c.bar.ExecContext(bg, "ROLLBACK")
		}
		d := time.Since(start)
		c.stats.Barriers++
		c.stats.BarrierTotal += d
		c.stats.BarrierMax = max(c.stats.BarrierMax, d)
	}()
	if drain {
		if err := c.drainLocked(); err != nil {
			return err
		}
	}
	return fn(bg)
}

// positionLocked, under a barrier, reads the WAL from its start, checks
// that it holds the Position resume (nil: none) and positions the
// Capturer at it (nil: at the end). The transactions after resume go to
// the queue.
func (c *Capturer) positionLocked(resume *walfile.Position) error {
	c.rd, c.queue, c.lost = nil, nil, nil
	c.pos = walfile.Position{}
	h, size, err := c.headerLocked()
	if err != nil {
		return err
	}
	if size >= walfile.HeaderSize {
		if h.PageSize != c.pageSize {
			return fmt.Errorf("capture: WAL page size %d, database %d", h.PageSize, c.pageSize)
		}
		if c.rd, err = walfile.NewReader(c.wal, size, h, h.Start()); err != nil {
			return err
		}
		c.pos = h.Start()
	}
	found := resume == nil || *resume == c.pos
	for c.rd != nil {
		txn, err := c.rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if found && resume != nil {
			c.queue = append(c.queue, txn)
			continue
		}
		c.pos = c.rd.Position()
		if resume != nil && *resume == c.pos {
			found = true
		}
	}
	if !found {
		c.lost = fmt.Errorf("%w: position %d (salt %08x%08x) is not in the WAL now (salt %08x%08x, %d bytes committed)",
			ErrLostContinuity, resume.Offset, resume.Salt.S1, resume.Salt.S2, c.pos.Salt.S1, c.pos.Salt.S2, c.pos.Offset)
		c.queue, c.pos = nil, *resume
	}
	return nil
}

// headerLocked reads the WAL's size and, if it has one, its header. A
// size below HeaderSize, or a header that does not verify, is reported as
// size 0 (no generation yet, or one being started).
func (c *Capturer) headerLocked() (walfile.Header, int64, error) {
	fi, err := c.wal.Stat()
	if err != nil {
		return walfile.Header{}, 0, fmt.Errorf("capture: stat WAL: %w", err)
	}
	size := fi.Size()
	c.lastSize = size
	if size < walfile.HeaderSize {
		return walfile.Header{}, 0, nil
	}
	var b [walfile.HeaderSize]byte
	if _, err := c.wal.ReadAt(b[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return walfile.Header{}, 0, fmt.Errorf("capture: read WAL header: %w", err)
	}
	h, err := walfile.ParseHeader(b[:])
	if err != nil {
		return walfile.Header{}, 0, nil
	}
	return h, size, nil
}

// lose records that continuity is lost.
func (c *Capturer) lose(format string, args ...any) error {
	c.lost = fmt.Errorf("%w: "+format, append([]any{ErrLostContinuity}, args...)...)
	c.queue = nil
	return c.lost
}

// readLocked reads the next committed transaction from the WAL, following
// a new generation when the invariant allows it. ok is false when there is
// none yet.
func (c *Capturer) readLocked() (txn walfile.Txn, ok bool, err error) {
	if c.lost != nil {
		return txn, false, c.lost
	}
	for {
		if c.rd != nil {
			fi, err := c.wal.Stat()
			if err != nil {
				return txn, false, fmt.Errorf("capture: stat WAL: %w", err)
			}
			c.rd.SetSize(fi.Size())
			txn, err := c.rd.Next()
			if err == nil {
				return txn, true, nil
			}
			if !errors.Is(err, io.EOF) {
				return txn, false, err
			}
		}
		// Nothing more in this generation: has a new one begun?
		if fi, err := os.Stat(c.walPath); err != nil || inode(fi) != c.walIno {
			return txn, false, c.lose("the WAL file was removed or replaced")
		}
		h, size, err := c.headerLocked()
		if err != nil {
			return txn, false, err
		}
		cur := c.rd
		switch {
		case cur != nil && size >= walfile.HeaderSize && h.Salt == cur.Header().Salt:
			if size < cur.Position().Offset {
				return txn, false, c.lose("the WAL shrank to %d bytes below the position %d of its generation", size, cur.Position().Offset)
			}
			return txn, false, nil // same generation, nothing new
		case cur == nil && size < walfile.HeaderSize:
			return txn, false, nil // still no generation
		}
		// The generation we read ended: the WAL was truncated, its
		// header is being rewritten, or a new generation began.
		if !c.pinned {
			return txn, false, c.lose("the WAL restarted while it was not pinned")
		}
		if cur != nil {
			// Under the invariant nothing of the old generation can be
			// left unread; make sure.
			cur.SetSize(c.lastSize)
			if _, err := cur.Next(); err == nil {
				return txn, false, c.lose("the WAL restarted with transactions of the old generation unread")
			}
		}
		if size < walfile.HeaderSize {
			c.rd = nil // wait for the new generation's header
			return txn, false, nil
		}
		if h.PageSize != c.pageSize {
			return txn, false, c.lose("the WAL's page size changed from %d to %d", c.pageSize, h.PageSize)
		}
		if c.rd, err = walfile.NewReader(c.wal, size, h, h.Start()); err != nil {
			return txn, false, err
		}
		if cur != nil {
			c.stats.Generations++
		}
	}
}

// Next returns the next committed transaction, waiting for one. It
// returns ErrLostContinuity (wrapped) when it cannot prove that the next
// transaction follows the last one (take a Snapshot), ctx's error, or
// ErrClosed. Transactions come in commit order; Position is the end of
// the last one returned.
func (c *Capturer) Next(ctx context.Context) (walfile.Txn, error) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	woken := true
	for {
		// Take a pending wake-up before reading, so that a write after
		// this read wakes the wait below.
		select {
		case <-c.notify:
			woken = true
		default:
		}
		c.mu.Lock()
		txn, ok, err := c.stepLocked(ctx)
		pending := int64(0)
		if c.rd != nil {
			pending = c.rd.Pending()
		}
		scanDur := c.lastScanDur
		c.mu.Unlock()
		if err != nil || ok {
			return txn, err
		}
		wait := c.cfg.pollInterval
		if c.cfg.inotify {
			wait = c.cfg.safetyPoll
		}
		timer.Reset(wait)
		woken = false
		select {
		case <-ctx.Done():
			return walfile.Txn{}, ctx.Err()
		case <-c.closed:
			return walfile.Txn{}, ErrClosed
		case <-c.notify:
			woken = true
		case <-timer.C:
		}
		if pending > 1<<20 && woken {
			// A large transaction is being written: let it progress
			// rather than verify its tail on every write (the Reader
			// resumes where it stopped, but a tail rewritten in place is
			// read again from its start).
			timer.Reset(min(scanDur, 20*time.Millisecond))
			select {
			case <-ctx.Done():
				return walfile.Txn{}, ctx.Err()
			case <-c.closed:
				return walfile.Txn{}, ErrClosed
			case <-timer.C:
			}
		}
	}
}

// stepLocked returns a queued or newly read transaction; at the end of the
// WAL it may run an automatic checkpoint.
func (c *Capturer) stepLocked(ctx context.Context) (walfile.Txn, bool, error) {
	if c.isClosed {
		return walfile.Txn{}, false, ErrClosed
	}
	if c.lost != nil {
		return walfile.Txn{}, false, c.lost
	}
	if txn, ok := c.popLocked(); ok {
		return txn, true, nil
	}
	if c.rd != nil && c.rd.Pending() > 0 && time.Since(c.pendingAt) > time.Second {
		// A transaction in progress that has not grown for a second:
		// verify it afresh, for the one change the Reader cannot see.
		c.rd.Rescan()
		c.pendingAt = time.Now()
	}
	start := time.Now()
	txn, ok, err := c.readLocked()
	c.lastScanDur = time.Since(start)
	if c.rd != nil && c.rd.Pending() != c.pending {
		c.pending, c.pendingAt = c.rd.Pending(), time.Now()
	}
	if err != nil {
		return walfile.Txn{}, false, err
	}
	if ok {
		c.returnedLocked(txn)
		return txn, true, nil
	}
	// Caught up: time for a checkpoint?
	if c.cfg.threshold > 0 && c.rd != nil && c.grownLocked() >= c.cfg.threshold && !time.Now().Before(c.nextCkpt) {
		c.ckptMark = c.rd.Position()
		_, err := c.checkpointLocked(ctx, c.cfg.barrierTimeout)
		switch {
		case err == nil:
			c.backoff = 0
		case errors.Is(err, ErrLostContinuity):
			return walfile.Txn{}, false, err
		default:
			c.stats.LastError = err.Error()
			c.backoff = min(max(2*c.backoff, c.cfg.minInterval), c.cfg.maxBackoff)
		}
		c.nextCkpt = time.Now().Add(max(c.backoff, c.cfg.minInterval))
		if txn, ok := c.popLocked(); ok {
			return txn, true, nil
		}
	}
	return walfile.Txn{}, false, nil
}

// grownLocked is how much was committed to the WAL since the last
// automatic checkpoint began (and all of it, in another generation).
func (c *Capturer) grownLocked() int64 {
	end := c.rd.Position()
	if end.Salt == c.ckptMark.Salt && end.Offset >= c.ckptMark.Offset {
		return end.Offset - c.ckptMark.Offset
	}
	return end.Offset - walfile.HeaderSize
}

func (c *Capturer) popLocked() (walfile.Txn, bool) {
	if len(c.queue) == 0 {
		return walfile.Txn{}, false
	}
	txn := c.queue[0]
	c.queue[0] = walfile.Txn{}
	c.queue = c.queue[1:]
	c.returnedLocked(txn)
	return txn, true
}

func (c *Capturer) returnedLocked(txn walfile.Txn) {
	c.pos = walfile.Position{Salt: txn.Salt, Offset: txn.End, Checksum: txn.Post}
	c.stats.Txns++
	c.stats.Frames += int64(len(txn.Frames))
}

// Checkpoint copies the WAL's frames into the database file and leaves
// the pin so that the app's next write can restart the WAL (see the
// package doc). Everything committed up to the end is read first, into a
// queue that Next returns before reading on: call it when Next has caught
// up, or expect the memory. It returns an error wrapping ErrBarrierTimeout
// when the write lock could not be taken within WithBusyTimeout: the
// frames were copied all the same, but the WAL cannot restart yet.
func (c *Capturer) Checkpoint(ctx context.Context) (CheckpointResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed {
		return CheckpointResult{}, ErrClosed
	}
	return c.checkpointLocked(ctx, c.cfg.busyTimeout)
}

func (c *Capturer) checkpointLocked(ctx context.Context, timeout time.Duration) (CheckpointResult, error) {
	if c.lost != nil {
		return CheckpointResult{}, c.lost
	}
	// 1. Move the pin to the end, so that 2. can copy nearly everything;
	// 2. the bulk of the copying, while the app writes on. Again while
	// the app committed much meanwhile: what was committed after the last
	// hand-off is copied under the barrier.
	for range 4 {
		if !c.pinned {
			break
		}
		if err := c.handoffLocked(ctx); err != nil {
			return CheckpointResult{}, err
		}
		mark := c.endLocked()
		if _, err := checkpoint(ctx, c.bar); err != nil {
			return CheckpointResult{}, err
		}
		if err := c.drainLocked(); err != nil {
			return CheckpointResult{}, err
		}
		if end := c.endLocked(); end >= mark && end-mark < 256<<10 {
			break
		}
	}
	// 3. The rest, and a pin on the wholly backfilled WAL.
	var res CheckpointResult
	err := c.barrierLocked(ctx, timeout, true, func(ctx context.Context) error {
		c.pinned = false
		p := c.pins[c.cur]
		unpin(ctx, p)
		r, cerr := checkpoint(ctx, p)
		if err := pin(ctx, p); err != nil {
			return err
		}
		if cerr != nil {
			return cerr
		}
		res = r
		// Cross-check our reading of the WAL with SQLite's index.
		frames := 0
		if c.rd != nil {
			frames = int((c.rd.Position().Offset - walfile.HeaderSize) / c.rd.Header().FrameSize())
		}
		if r.Log >= 0 && r.Log != frames {
			return c.lose("SQLite's WAL index holds %d frames, the WAL file reads as %d committed", r.Log, frames)
		}
		c.pinned = true
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrBarrierTimeout) {
			c.stats.CheckpointsShort++
		}
		return res, err
	}
	c.stats.Checkpoints++
	c.stats.LastCheckpoint = res
	return res, nil
}

// endLocked is the offset in the WAL after the last transaction read.
func (c *Capturer) endLocked() int64 {
	if c.rd == nil {
		return 0
	}
	return c.rd.Position().Offset
}

func checkpoint(ctx context.Context, conn *sql.Conn) (CheckpointResult, error) {
	var r CheckpointResult
	var busy int
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &r.Log, &r.Checkpointed); err != nil {
		return r, fmt.Errorf("capture: checkpoint: %w", err)
	}
	r.Busy = busy != 0
	return r, nil
}

// Snapshot writes a consistent copy of the database to the file dst
// (created or overwritten) and returns the WAL position of the state it
// holds. The copy is made with SQLite's backup API through the pinned read
// transaction, after a barrier has read the WAL to its end and moved the
// pin there, so the app's writers wait only for the barrier, not for the
// copy.
//
// Transactions read by the barrier but not returned by Next yet stay
// queued: pending says how many, and the copy's state is after the last
// of them, so a caller that ships every transaction Next returns knows
// which one the copy ends with. After ErrLostContinuity nothing is queued
// (pending is 0): the copy is the new base, and it clears the error.
func (c *Capturer) Snapshot(ctx context.Context, dst string) (pos walfile.Position, pending int, err error) {
	c.snapMu.Lock()
	pos, pending, err = c.beginSnapshot(ctx, true)
	if err != nil {
		c.snapMu.Unlock()
		return walfile.Position{}, 0, err
	}
	sc := &SnapshotCopy{c: c, Position: pos, Pending: pending}
	defer sc.Close()
	if err := sc.Copy(ctx, dst); err != nil {
		return walfile.Position{}, 0, err
	}
	return sc.Position, sc.Pending, nil
}

// SnapshotCopy is a snapshot begun (BeginSnapshot) and not copied yet: a
// read transaction of the Capturer's snapshot connection, at Position,
// with Pending transactions queued for Next that it already holds (see
// Snapshot). Next goes on while it is open; Close it.
type SnapshotCopy struct {
	c        *Capturer
	Position walfile.Position
	Pending  int
	closed   bool
}

// BeginSnapshot is the quick half of Snapshot, under a barrier; Copy,
// which may take long, runs without holding up Next. One snapshot at a
// time: BeginSnapshot waits for the previous SnapshotCopy's Close. Unlike
// Snapshot it does not start over after lost continuity: it returns
// ErrLostContinuity, since its copy follows what Next returned.
func (c *Capturer) BeginSnapshot(ctx context.Context) (*SnapshotCopy, error) {
	c.snapMu.Lock()
	pos, pending, err := c.beginSnapshot(ctx, false)
	if err != nil {
		c.snapMu.Unlock()
		return nil, err
	}
	return &SnapshotCopy{c: c, Position: pos, Pending: pending}, nil
}

// Copy writes the snapshot to the file dst (created or overwritten) with
// SQLite's backup API, inside the copy's read transaction.
func (s *SnapshotCopy) Copy(ctx context.Context, dst string) error {
	for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
		if err := os.Remove(dst + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("capture: snapshot: %w", err)
		}
	}
	err := s.c.snap.Raw(func(dc any) error {
		b, ok := dc.(interface {
			NewBackup(string) (*sqlite.Backup, error)
		})
		if !ok {
			return errors.New("driver connection has no backup API")
		}
		bk, err := b.NewBackup(dst)
		if err != nil {
			return err
		}
		for {
			more, err := bk.Step(1024)
			if err != nil {
				bk.Finish()
				return err
			}
			if !more {
				return bk.Finish()
			}
			if err := ctx.Err(); err != nil {
				bk.Finish()
				return err
			}
		}
	})
	if err != nil {
		return fmt.Errorf("capture: snapshot: %w", err)
	}
	return nil
}

// Close ends the copy's read transaction (which, like the pin, holds the
// WAL) and lets the next snapshot begin.
func (s *SnapshotCopy) Close() {
	if s.closed {
		return
	}
	s.closed = true
	unpin(context.Background(), s.c.snap)
	s.c.snapMu.Unlock()
}

// beginSnapshot, under a barrier, reads the WAL to its end (or starts over
// after lost continuity), moves the pin there and begins the copy's read
// transaction at the same point.
func (c *Capturer) beginSnapshot(ctx context.Context, reset bool) (pos walfile.Position, pending int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed {
		return walfile.Position{}, 0, ErrClosed
	}
	if c.lost != nil && !reset {
		// A copy taken now would hold transactions the caller never
		// saw: only Snapshot, which starts over, may clear this.
		return walfile.Position{}, 0, c.lost
	}
	if fi, err := os.Stat(c.walPath); err != nil || inode(fi) != c.walIno {
		if err := c.openWAL(); err != nil {
			return walfile.Position{}, 0, err
		}
	}
	if err := c.barrierLocked(ctx, c.cfg.busyTimeout, false, func(ctx context.Context) error {
		if c.lost != nil {
			if err := c.positionLocked(nil); err != nil {
				return err
			}
		} else if err := c.drainLocked(); err != nil {
			return err
		}
		if err := c.repinLocked(ctx); err != nil {
			return err
		}
		return pin(ctx, c.snap)
	}); err != nil {
		return walfile.Position{}, 0, err
	}
	pos, pending = c.pos, len(c.queue)
	if pending > 0 {
		last := c.queue[pending-1]
		pos = walfile.Position{Salt: last.Salt, Offset: last.End, Checksum: last.Post}
	}
	return pos, pending, nil
}

// SyncPoint is where Sync found the end of what is committed: the WAL
// Position after it, and Returned, the count of transactions Next will
// have returned in all (Stats().Txns) once it has returned all of it.
// Returned orders points, which positions across WAL generations do not.
type SyncPoint struct {
	Position walfile.Position
	Returned int64
}

// Sync reads everything committed so far, under a barrier so that nothing
// commits meanwhile, and returns where Next will be once it has returned
// all of it: on a graceful handoff, with the app stopped, the caller
// ships until it has shipped that much and so leaves nothing behind.
func (c *Capturer) Sync(ctx context.Context) (SyncPoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed {
		return SyncPoint{}, ErrClosed
	}
	if c.lost != nil {
		return SyncPoint{}, c.lost
	}
	if err := c.barrierLocked(ctx, c.cfg.busyTimeout, true, func(context.Context) error { return nil }); err != nil {
		return SyncPoint{}, err
	}
	sp := SyncPoint{Position: c.pos, Returned: c.stats.Txns + int64(len(c.queue))}
	if n := len(c.queue); n > 0 {
		last := c.queue[n-1]
		sp.Position = walfile.Position{Salt: last.Salt, Offset: last.End, Checksum: last.Post}
	}
	return sp, nil
}

// Check runs PRAGMA quick_check in a read transaction of the snapshot
// connection: the database as of now, checked without opening its file
// again (see "Files and locks") and without holding up Next (a check of a
// big database takes seconds). It waits for a snapshot being copied. It
// returns nil for "ok", else SQLite's first messages.
func (c *Capturer) Check(ctx context.Context) ([]string, error) {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	c.mu.Lock()
	closed := c.isClosed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if err := pin(ctx, c.snap); err != nil {
		return nil, err
	}
	defer unpin(ctx, c.snap)
	rows, err := c.snap.QueryContext(ctx, "PRAGMA quick_check(10)")
	if err != nil {
		return nil, fmt.Errorf("capture: quick_check: %w", err)
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
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(msgs) == 1 && msgs[0] == "ok" {
		return nil, nil
	}
	return msgs, nil
}

// Position is the end of the last transaction Next returned (or where the
// Capturer was positioned): the place to resume from.
func (c *Capturer) Position() walfile.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos
}

// PageSize is the database's page size.
func (c *Capturer) PageSize() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pageSize
}

// Stats returns the counters.
func (c *Capturer) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Close ends the read transaction and closes the connections and files.
func (c *Capturer) Close() error {
	c.mu.Lock()
	if c.isClosed {
		c.mu.Unlock()
		return nil
	}
	c.isClosed = true
	close(c.closed)
	c.mu.Unlock()
	return c.shutdown()
}

func (c *Capturer) shutdown() error {
	if c.stopW != nil {
		c.stopW()
	}
	var errs []error
	ctx := context.Background()
	for _, conn := range []*sql.Conn{c.pins[0], c.pins[1], c.bar, c.snap} {
		if conn != nil {
			unpin(ctx, conn)
			errs = append(errs, conn.Close())
		}
	}
	if c.db != nil {
		errs = append(errs, c.db.Close())
	}
	if c.wal != nil {
		errs = append(errs, c.wal.Close())
	}
	return errors.Join(errs...)
}
