// Command sqlitewriter is a test workload for SQLite replication: it opens
// a database in WAL mode and commits random transactions at a given rate,
// printing "commit ID" on stdout after each COMMIT has returned, so that a
// test knows exactly what was committed. Each transaction inserts its ID
// into the table log (never deleted) and changes the table data at random
// (inserts, updates, deletes); options add big blobs, VACUUM, the app's
// own checkpoints of every mode, schema changes and rolled-back
// transactions that spill frames into the WAL.
//
// Other lines: "checkpoint MODE busy=B log=L checkpointed=C ms=D err=E",
// "vacuum ms=D err=E", "rollback N", "ready" (after the schema exists) and
// "done N" at the end. It stops after -n transactions, after -duration, or
// when its standard input is closed (with -stdin).
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite"
)

func main() {
	var (
		path        = flag.String("db", "", "database path (required)")
		n           = flag.Int("n", 0, "transactions to commit (0: no limit)")
		start       = flag.Int("start", 1, "ID of the first transaction")
		duration    = flag.Duration("duration", 0, "stop after this long (0: no limit)")
		rate        = flag.Float64("rate", 0, "transactions per second (0: as fast as possible)")
		seed        = flag.Uint64("seed", 1, "random seed")
		blobEvery   = flag.Int("blob-every", 0, "every Nth transaction inserts a big blob")
		blobSize    = flag.Int("blob-size", 1536<<10, "size of the big blobs")
		vacuumEvery = flag.Int("vacuum-every", 0, "VACUUM after every Nth transaction")
		ckptEvery   = flag.Int("checkpoint-every", 0, "checkpoint after every Nth transaction")
		ckptModes   = flag.String("checkpoint-modes", "passive,full,restart,truncate", "checkpoint modes, in turn")
		schemaEvery = flag.Int("schema-every", 0, "every Nth transaction changes the schema")
		rbEvery     = flag.Int("rollback-every", 0, "after every Nth transaction, one that spills and rolls back")
		autoCkpt    = flag.Int("autocheckpoint", -1, "PRAGMA wal_autocheckpoint (-1: SQLite's default)")
		cacheSize   = flag.Int("cache-size", 0, "PRAGMA cache_size in pages (0: default); small values spill big transactions")
		busyMS      = flag.Int("busy-timeout", 10000, "busy timeout in ms")
		ckptBusy    = flag.Int("checkpoint-busy-timeout", 200, "busy timeout in ms for the checkpoints (FULL, RESTART and TRUNCATE wait for readers)")
		stdin       = flag.Bool("stdin", false, "stop when standard input is closed")
		initOnly    = flag.Bool("init", false, "create the schema and exit")
		small       = flag.Bool("small", false, "each transaction only inserts its ID and one 100-byte row (an OLTP-like write, for latency benchmarks)")
	)
	flag.Parse()
	if *path == "" {
		fmt.Fprintln(os.Stderr, "sqlitewriter: -db is required")
		os.Exit(2)
	}
	ctx := context.Background()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if *stdin {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		go func() {
			io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	// BEGIN IMMEDIATE, as an app next to a replicator should: a deferred
	// transaction that reads and then writes gets SQLITE_BUSY at once
	// (no busy handler) when another connection holds the write lock.
	dsn := fmt.Sprintf("%s?_txlock=immediate&_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)", *path, *busyMS)
	db, err := sql.Open("sqlite", dsn)
	check(err)
	defer db.Close()
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	if *autoCkpt >= 0 {
		mustExec(ctx, db, fmt.Sprintf("PRAGMA wal_autocheckpoint=%d", *autoCkpt))
	}
	if *cacheSize != 0 {
		mustExec(ctx, db, fmt.Sprintf("PRAGMA cache_size=%d", *cacheSize))
	}
	mustExec(ctx, db, `CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)`)
	mustExec(ctx, db, `CREATE TABLE IF NOT EXISTS data (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB)`)
	mustExec(ctx, db, `CREATE INDEX IF NOT EXISTS data_k ON data (k)`)
	fmt.Println("ready")
	if *initOnly {
		return
	}

	r := rand.New(rand.NewPCG(*seed, *seed+1))
	modes := strings.Split(*ckptModes, ",")
	var interval time.Duration
	if *rate > 0 {
		interval = time.Duration(float64(time.Second) / *rate)
	}
	next := time.Now()
	committed := 0
	for i := 0; *n == 0 || i < *n; i++ {
		if ctx.Err() != nil {
			break
		}
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
			next = next.Add(interval)
		}
		id := *start + i
		if *small {
			err := smallTxn(ctx, db, r, id)
			if err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "sqlitewriter: txn %d: %v\n", id, err)
				os.Exit(1)
			}
			if err != nil {
				break
			}
			fmt.Printf("commit %d\n", id)
			committed++
			continue
		}
		if err := txn(ctx, db, r, id, *blobEvery > 0 && id%*blobEvery == 0, *blobSize, *schemaEvery > 0 && id%*schemaEvery == 0); err != nil {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(os.Stderr, "sqlitewriter: txn %d: %v\n", id, err)
			os.Exit(1)
		}
		fmt.Printf("commit %d\n", id)
		committed++
		if *rbEvery > 0 && id%*rbEvery == 0 {
			rollback(ctx, db, r, id)
		}
		if *vacuumEvery > 0 && id%*vacuumEvery == 0 {
			t := time.Now()
			_, err := db.ExecContext(ctx, "VACUUM")
			fmt.Printf("vacuum ms=%.2f err=%v\n", ms(time.Since(t)), err)
		}
		if *ckptEvery > 0 && id%*ckptEvery == 0 {
			mode := strings.ToUpper(modes[(id / *ckptEvery)%len(modes)])
			var busy, log, done int
			mustExec(ctx, db, fmt.Sprintf("PRAGMA busy_timeout=%d", *ckptBusy))
			t := time.Now()
			err := db.QueryRowContext(ctx, fmt.Sprintf("PRAGMA wal_checkpoint(%s)", mode)).Scan(&busy, &log, &done)
			d := time.Since(t)
			mustExec(ctx, db, fmt.Sprintf("PRAGMA busy_timeout=%d", *busyMS))
			fmt.Printf("checkpoint %s busy=%d log=%d checkpointed=%d ms=%.2f err=%v\n", mode, busy, log, done, ms(d), err)
		}
	}
	fmt.Printf("done %d\n", committed)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// txn commits transaction id.
func txn(ctx context.Context, db *sql.DB, r *rand.Rand, id int, big bool, bigSize int, schema bool) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO log (id, at) VALUES (?, ?)", id, time.Now().UnixNano()); err != nil {
		return err
	}
	for range 1 + r.IntN(4) {
		switch r.IntN(4) {
		case 0, 1:
			_, err = tx.ExecContext(ctx, "INSERT INTO data (k, v) VALUES (?, ?)", r.IntN(1000), blob(r, 10+r.IntN(3000)))
		case 2:
			_, err = tx.ExecContext(ctx, "UPDATE data SET v = ? WHERE id IN (SELECT id FROM data ORDER BY random() LIMIT 3)", blob(r, 10+r.IntN(500)))
		case 3:
			_, err = tx.ExecContext(ctx, "DELETE FROM data WHERE id IN (SELECT id FROM data ORDER BY random() LIMIT 2)")
		}
		if err != nil {
			return err
		}
	}
	if big {
		if _, err := tx.ExecContext(ctx, "INSERT INTO data (k, v) VALUES (?, ?)", -id, blob(r, bigSize)); err != nil {
			return err
		}
	}
	if schema {
		var stmts []string
		switch r.IntN(4) {
		case 0:
			stmts = []string{
				fmt.Sprintf("CREATE TABLE s%d (a INTEGER PRIMARY KEY, b TEXT)", id),
				fmt.Sprintf("INSERT INTO s%d (b) SELECT hex(randomblob(50)) FROM log LIMIT 100", id),
			}
		case 1:
			var name string
			err := tx.QueryRowContext(ctx, "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 's%' ORDER BY random() LIMIT 1").Scan(&name)
			switch {
			case err == sql.ErrNoRows: // nothing to drop
			case err != nil:
				return err
			default:
				stmts = []string{"DROP TABLE " + name}
			}
		case 2:
			stmts = []string{fmt.Sprintf("CREATE INDEX IF NOT EXISTS data_v%d ON data (length(v) + %d)", id%5, id%5)}
		case 3:
			stmts = []string{fmt.Sprintf("DROP INDEX IF EXISTS data_v%d", id%5)}
		}
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
	}
	return tx.Commit()
}

// smallTxn commits transaction id as one small row and its log entry.
func smallTxn(ctx context.Context, db *sql.DB, r *rand.Rand, id int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO log (id, at) VALUES (?, ?)", id, time.Now().UnixNano()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO data (k, v) VALUES (?, ?)", id, blob(r, 100)); err != nil {
		return err
	}
	return tx.Commit()
}

// rollback writes enough in a transaction to spill pages into the WAL (with
// a small cache size), then rolls back: the next commit overwrites those
// frames.
func rollback(ctx context.Context, db *sql.DB, r *rand.Rand, id int) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return
	}
	for range 20 {
		tx.ExecContext(ctx, "INSERT INTO data (k, v) VALUES (?, ?)", -1, blob(r, 8000))
	}
	tx.Rollback()
	fmt.Printf("rollback %d\n", id)
}

func blob(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustExec(ctx context.Context, db *sql.DB, q string) {
	_, err := db.ExecContext(ctx, q)
	check(err)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqlitewriter:", err)
		os.Exit(1)
	}
}
