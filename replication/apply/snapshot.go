//go:build linux

package apply

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ozanturksever/go-cluster/replication/walfile"
)

// SnapshotOptions says what a snapshot is tagged with and lets the caller
// act inside its read transaction.
type SnapshotOptions struct {
	// Seq and Epoch are the log entry the snapshot corresponds to, as the
	// caller knows it; Resolve, if set, overrides them.
	Seq, Epoch uint64
	// Resolve, if set, is called inside the read transaction once the WAL
	// position of the snapshot is known, before any page is copied, and
	// returns the log entry that position is the end of: on the leader,
	// the capture's seq whose transaction ends at pos (waiting for the
	// capture to reach it if need be; the read transaction keeps the
	// writer from restarting the WAL under frames it still needs). pos is
	// the zero Position when the database is not in WAL mode or its WAL
	// was never written to, and offset 32 without a checksum when the WAL
	// holds no valid frame (the snapshot is at the start of a generation).
	Resolve func(ctx context.Context, pos walfile.Position) (seq, epoch uint64, err error)
	// InTx, if set, is called inside the read transaction after the pages
	// were copied, with the connection, to read the same state the
	// snapshot holds (tests record the rows this way).
	InTx func(ctx context.Context, conn *sql.Conn) error
}

// SnapshotInfo describes a snapshot: what it corresponds to and how to
// verify it.
type SnapshotInfo struct {
	Seq, Epoch uint64
	// Cursor is the log's position of entry Seq (see Applied.Cursor).
	Cursor uint64
	// Position is the WAL position the image corresponds to: the salt of
	// the WAL generation, the offset after the read transaction's last
	// valid frame, and the chain checksum up to it (none at offset 32).
	// The zero Position when unknown (see SnapshotOptions.Resolve).
	Position  walfile.Position
	PageSize  uint32
	PageCount uint32
	SHA256    [sha256.Size]byte // of the PageSize*PageCount bytes
}

// Size is the snapshot's length in bytes.
func (i SnapshotInfo) Size() int64 { return int64(i.PageSize) * int64(i.PageCount) }

// TakeSnapshot writes to w a page-exact image of the database open on
// conn (its "main" schema), as of one read transaction, and returns what
// it corresponds to. conn must be a modernc.org/sqlite connection outside
// any transaction; TakeSnapshot opens (BEGIN) and ends (ROLLBACK) the read
// transaction itself. Writers on other connections go on meanwhile.
//
// Why the image is consistent and tagged with the right WAL position:
//
//   - After BEGIN, sqlite3_snapshot_get opens the read transaction and
//     returns a copy of the WAL index header it reads through: the salt
//     of the WAL generation, mxFrame (the last frame the transaction
//     sees) and the chain checksum after that frame. In WAL mode a read
//     transaction sees exactly the database as of its mxFrame, however
//     many commits follow, so the position is the end of frame mxFrame:
//     offset 32 + mxFrame*(24+pageSize). With mxFrame 0 (the WAL empty,
//     or restarted and not yet written) the position is offset 32 with no
//     checksum (see walPosition).
//   - The pages are read with SELECT pgno, data FROM sqlite_dbpage in that
//     same read transaction. sqlite_dbpage reads each page through the
//     connection's pager, i.e. from the WAL frames up to mxFrame or from
//     the database file, as any query of that transaction would: it is
//     the database file the leader would have after checkpointing to
//     mxFrame, page for page (including the header of page 1; the page
//     holding the lock bytes at 1 GiB, which SQLite never uses, reads as
//     zeros). The number of pages is PRAGMA page_count of the same
//     transaction.
//
// What is not used, and why: VACUUM INTO builds a new, vacuumed database
// (different pages), so WAL frames cannot be applied on top of it. The
// online backup API (modernc exposes it as the driver connection's
// NewBackup) does copy pages inside the source's read transaction, but
// writes them to a destination database that it commits, which rewrites
// the file change counter and version-valid-for fields of page 1, so the
// image is not page-exact; it also needs a destination file, not a
// stream. (sqlite3_serialize reads sqlite_dbpage too, but into memory.)
//
// The SHA-256 is of the bytes written to w. The seq/epoch recorded are
// the caller's word (SnapshotOptions.Seq/Epoch) or Resolve's.
func TakeSnapshot(ctx context.Context, conn *sql.Conn, w io.Writer, opts SnapshotOptions) (info SnapshotInfo, err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return SnapshotInfo{}, err
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil && err == nil {
			err = rerr
		}
	}()

	var hdr walIndexHdr
	var hdrErr error
	if err := conn.Raw(func(dc any) error {
		hdr, hdrErr = snapshotHeader(dc)
		return nil
	}); err != nil {
		return SnapshotInfo{}, err
	}
	// The read transaction is open now (sqlite3_snapshot_get opens it);
	// a statement makes sure of it in rollback-journal mode too.
	var pageCount, pageSize int64
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA main.page_count").Scan(&pageCount); err != nil {
		return SnapshotInfo{}, err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA main.page_size").Scan(&pageSize); err != nil {
		return SnapshotInfo{}, err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA main.journal_mode").Scan(&mode); err != nil {
		return SnapshotInfo{}, err
	}
	if !validPageSize(uint32(pageSize)) || pageCount < 0 || pageCount > 1<<32-2 {
		return SnapshotInfo{}, fmt.Errorf("apply: snapshot: page size %d, page count %d", pageSize, pageCount)
	}
	info.PageSize, info.PageCount = uint32(pageSize), uint32(pageCount)

	if strings.EqualFold(mode, "wal") {
		switch {
		case hdrErr == nil:
			if hdr.PageSize != info.PageSize || hdr.MxFrame > 0 && hdr.NPage != info.PageCount {
				// The header does not describe this database: the
				// layout of sqlite3_snapshot is not what we read.
				return SnapshotInfo{}, fmt.Errorf("%w: snapshot header says page size %d, %d pages; the transaction %d, %d",
					ErrNoWALPosition, hdr.PageSize, hdr.NPage, info.PageSize, info.PageCount)
			}
			info.Position = walPosition(hdr)
		case errors.Is(hdrErr, errNoSnapshot):
			// A WAL never written to: no position.
		default:
			return SnapshotInfo{}, fmt.Errorf("%w: %v", ErrNoWALPosition, hdrErr)
		}
	}

	info.Seq, info.Epoch = opts.Seq, opts.Epoch
	if opts.Resolve != nil {
		if info.Seq, info.Epoch, err = opts.Resolve(ctx, info.Position); err != nil {
			return SnapshotInfo{}, err
		}
	}

	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	if err := copyPages(ctx, conn, bw, info.PageSize, info.PageCount); err != nil {
		return SnapshotInfo{}, err
	}
	if err := bw.Flush(); err != nil {
		return SnapshotInfo{}, err
	}
	copy(info.SHA256[:], h.Sum(nil))

	if opts.InTx != nil {
		if err := opts.InTx(ctx, conn); err != nil {
			return SnapshotInfo{}, err
		}
	}
	return info, nil
}

// copyPages writes pages 1..count of the read transaction's view to w.
func copyPages(ctx context.Context, conn *sql.Conn, w io.Writer, pageSize, count uint32) error {
	rows, err := conn.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage('main')")
	if err != nil {
		return err
	}
	defer rows.Close()
	var want uint32 = 1
	for rows.Next() {
		var pgno int64
		var data sql.RawBytes
		if err := rows.Scan(&pgno, &data); err != nil {
			return err
		}
		if pgno != int64(want) || want > count {
			return fmt.Errorf("apply: snapshot: sqlite_dbpage returned page %d, want %d of %d", pgno, want, count)
		}
		if len(data) != int(pageSize) {
			return fmt.Errorf("apply: snapshot: page %d is %d bytes, page size %d", pgno, len(data), pageSize)
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		want++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if want-1 != count {
		return fmt.Errorf("apply: snapshot: sqlite_dbpage returned %d pages, page_count %d", want-1, count)
	}
	return nil
}

// walPosition turns the read transaction's WAL index header into a
// position. With no valid frame (mxFrame 0: the WAL empty, or restarted
// and not yet written) the position is the start of a generation, offset
// 32, without a checksum: the WAL header that starts the chain is not
// fixed yet (the next writer writes it, with its own checkpoint sequence
// number and, on a connection that never restarted the WAL, fresh
// salts), so the chain check of the next transaction is skipped.
func walPosition(h walIndexHdr) walfile.Position {
	p := walfile.Position{Salt: walfile.Salt{S1: h.Salt[0], S2: h.Salt[1]}, Offset: walfile.HeaderSize}
	if h.MxFrame > 0 {
		p.Offset += int64(h.MxFrame) * (walfile.FrameHeaderSize + int64(h.PageSize))
		p.Checksum = walfile.Checksum{S1: h.FrameCk[0], S2: h.FrameCk[1]}
	}
	return p
}

// RestoreSnapshot makes dir a replica holding the snapshot read from r,
// described by info, at info's position, and opens it; the replica then
// applies from info.Seq+1. It reads exactly info.Size() bytes and checks
// their SHA-256 and page 1's page size before installing anything
// (ErrSnapshotMismatch). Installation: replica.db.tmp is written and
// fsynced; position.json is removed (fsync dir), so that no crash can pair
// the new file with the old position; the file is renamed over replica.db
// (fsync dir); then the new position is written atomically. A crash before
// the end leaves either the old replica or an empty one (no position),
// never a mismatched one. No Replica may be open on dir (ErrLocked).
func RestoreSnapshot(dir string, r io.Reader, info SnapshotInfo, opts ...Option) (*Replica, error) {
	if info.PageCount > 0 && !validPageSize(info.PageSize) {
		return nil, fmt.Errorf("%w: page size %d", ErrSnapshotMismatch, info.PageSize)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	rep, err := restoreLocked(dir, lock, r, info, opts)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return rep, nil
}

func restoreLocked(dir string, lock *os.File, r io.Reader, info SnapshotInfo, opts []Option) (*Replica, error) {
	final := filepath.Join(dir, DBName)
	tmp := final + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	err = writeSnapshotFile(f, r, info)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := removeIfExists(filepath.Join(dir, PositionName)); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	a := Applied{
		Seq:        info.Seq,
		Epoch:      info.Epoch,
		Cursor:     info.Cursor,
		Position:   info.Position,
		PageSize:   info.PageSize,
		CommitSize: info.PageCount,
	}
	if err := writePosition(dir, a, nil); err != nil {
		return nil, err
	}
	return openLocked(dir, lock, opts)
}

func writeSnapshotFile(f *os.File, r io.Reader, info SnapshotInfo) error {
	h := sha256.New()
	hw := &headWriter{Hash: h}
	n, err := io.CopyBuffer(io.MultiWriter(f, hw), io.LimitReader(r, info.Size()), make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if n != info.Size() {
		return fmt.Errorf("%w: %d bytes, want %d", ErrSnapshotMismatch, n, info.Size())
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	if sum != info.SHA256 {
		return fmt.Errorf("%w: SHA-256 %x, want %x", ErrSnapshotMismatch, sum, info.SHA256)
	}
	if n > 0 {
		if ps := headerPageSize(hw.head.Bytes()); ps != info.PageSize {
			return fmt.Errorf("%w: page 1 says page size %d, info %d", ErrSnapshotMismatch, ps, info.PageSize)
		}
	}
	return fdatasync(f)
}

// headWriter hashes everything and keeps the first 100 bytes (the
// database header).
type headWriter struct {
	hash.Hash
	head bytes.Buffer
}

func (w *headWriter) Write(p []byte) (int, error) {
	if rest := 100 - w.head.Len(); rest > 0 {
		w.head.Write(p[:min(rest, len(p))])
	}
	return w.Hash.Write(p)
}

// headerPageSize reads the page size from a database header (offset 16,
// big-endian, 1 meaning 65536); 0 if it is no SQLite header.
func headerPageSize(b []byte) uint32 {
	if len(b) < 100 || string(b[:16]) != "SQLite format 3\x00" {
		return 0
	}
	ps := uint32(binary.BigEndian.Uint16(b[16:18]))
	if ps == 1 {
		ps = 65536
	}
	return ps
}
