//go:build linux

package apply

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// maxCheckMessages bounds the messages quick_check reports.
const maxCheckMessages = 10

// Check runs PRAGMA quick_check on replica.db, opened read-only and
// immutable (no locks, no -wal or -shm: nothing but this Replica writes
// the file, and Check holds the Replica while it runs, so no Apply
// interleaves). It returns ErrEmpty when nothing is applied, and a
// *CheckError (ErrCheckFailed) with the first messages if the result is
// not "ok". After a crash in the middle of an Apply, re-apply the
// transaction after the recorded position before checking (see the
// package documentation).
func (r *Replica) Check(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.applied.CommitSize == 0 {
		return ErrEmpty
	}
	return quickCheck(ctx, r.Path())
}

// readOnlyDSN is a modernc.org/sqlite DSN opening path read-only and
// immutable.
func readOnlyDSN(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro&immutable=1"}
	return u.String()
}

func quickCheck(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", readOnlyDSN(path))
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, fmt.Sprintf("PRAGMA quick_check(%d)", maxCheckMessages))
	if err != nil {
		return err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(msgs) == 1 && msgs[0] == "ok" {
		return nil
	}
	return &CheckError{Messages: msgs}
}

// PromoteTo makes the replica's database the database at path, the
// application's database file, atomically: the content is copied into a
// temporary file next to path (a reflink where the filesystem can, else
// an in-kernel copy) and fsynced; then path's -wal, -shm and -journal are
// removed and the directory fsynced; then the temporary file is renamed
// over path and the directory fsynced again. The replica itself is left
// as it is.
//
// Why the -wal, -shm and -journal go, and before the rename: a WAL file
// carries no identity of the database it belongs to, only its own salts
// and checksum chain, so SQLite opening path would replay a leftover
// path-wal of the old history, frames whose checksums are valid, onto the
// promoted file and so corrupt it (or silently mix two histories);
// likewise a leftover hot path-journal would be rolled back into it, and
// a stale path-shm could describe frames of the old WAL. Removing them
// first means that at no moment does path name the new content next to
// the old history's -wal: whoever opens path after the rename finds no
// WAL to replay. A crash between the removal and the rename leaves the
// old database without its WAL (losing its uncheckpointed commits, which
// the promotion discards anyway); run PromoteTo again.
//
// The application must not have path open (no connection, in any
// process) while PromoteTo runs, nor reopen it before PromoteTo returns;
// page 1 of the replica says WAL mode, so the first connection afterwards
// starts a fresh WAL. Run Check first to promote only a replica that
// passes quick_check, or CheckAndPromoteTo.
func (r *Replica) PromoteTo(path string) error {
	return r.promote(context.Background(), path, false)
}

// CheckAndPromoteTo is Check and PromoteTo in one: quick_check runs while
// the replica is copied, and the copy is installed only if the check
// passed (a *CheckError otherwise, and path is untouched). Promotion then
// takes about the longer of the two, not their sum, which for a big
// database is most of a failover's time.
func (r *Replica) CheckAndPromoteTo(ctx context.Context, path string) error {
	return r.promote(ctx, path, true)
}

func (r *Replica) promote(ctx context.Context, path string, check bool) (err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.applied.CommitSize == 0 {
		return ErrEmpty
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".promote-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	checked := make(chan error, 1)
	if check {
		// r.mu is held: no Apply changes the file under the check.
		go func() { checked <- quickCheck(ctx, r.Path()) }()
	} else {
		checked <- nil
	}
	size := int64(r.applied.CommitSize) * int64(r.applied.PageSize)
	if err := cloneOrCopy(tmp, r.Path(), size); err != nil {
		<-checked
		return err
	}
	if err := <-checked; err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if err := removeIfExists(path + suffix); err != nil {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// cloneOrCopy makes dst a copy of the first size bytes of the file src:
// a reflink (FICLONE) when the filesystem shares extents, else
// copy_file_range (io.Copy from a LimitedReader of an *os.File), else
// read/write. The extra descriptor of src is harmless to close: nobody
// holds a POSIX lock on replica.db.
func cloneOrCopy(dst *os.File, src string, size int64) error {
	sf, err := os.Open(src)
	if err != nil {
		return err
	}
	defer sf.Close()
	st, err := sf.Stat()
	if err != nil {
		return err
	}
	if st.Size() < size {
		return errors.New("apply: replica file shorter than its commit size")
	}
	if st.Size() == size {
		if err := unix.IoctlFileClone(int(dst.Fd()), int(sf.Fd())); err == nil {
			return nil
		}
	}
	if err := dst.Truncate(0); err != nil {
		return err
	}
	if _, err := dst.Seek(0, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(dst, io.LimitReader(sf, size))
	if err != nil {
		return err
	}
	if n != size {
		return errors.New("apply: replica file shorter than its commit size")
	}
	return nil
}
