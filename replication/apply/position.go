//go:build linux

package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ozanturksever/go-cluster/replication/walfile"
	"golang.org/x/sys/unix"
)

// File names inside a replica directory.
const (
	DBName       = "replica.db"
	PositionName = "position.json"
	lockName     = "LOCK"
	tmpSuffix    = ".tmp"
)

// Applied is what a replica holds: the log entry and the WAL position of
// the last transaction applied to replica.db. The zero value is an empty
// replica, before anything is applied.
type Applied struct {
	// Seq and Epoch are the log's sequence number and epoch of the last
	// applied transaction (or of the snapshot the replica was restored
	// from).
	Seq   uint64
	Epoch uint64
	// Cursor is where the log that carries the transactions stands after
	// the last applied one (a JetStream stream sequence): the place to
	// read on from. The caller's number; 0 when unknown.
	Cursor uint64
	// Position is the leader's WAL position after the last applied
	// transaction: its salt, the offset of the next frame, and the chain
	// checksum up to it. Offset 0 means no WAL position is known, offset
	// 32 (walfile.HeaderSize) the start of a generation without a
	// checksum; either way the next transaction is checked by its seq
	// alone.
	Position walfile.Position
	// PageSize is the database page size; 0 while nothing is applied.
	PageSize uint32
	// CommitSize is the database size in pages: replica.db is
	// CommitSize*PageSize bytes long.
	CommitSize uint32
}

// positionFile is position.json's format, spelled out so that it does
// not change with walfile's types.
type positionFile struct {
	Version    int    `json:"version"`
	Seq        uint64 `json:"seq"`
	Epoch      uint64 `json:"epoch"`
	Salt1      uint32 `json:"salt1"`
	Salt2      uint32 `json:"salt2"`
	Offset     int64  `json:"offset"`
	Checksum1  uint32 `json:"checksum1"`
	Checksum2  uint32 `json:"checksum2"`
	PageSize   uint32 `json:"page_size"`
	CommitSize uint32 `json:"commit_size"`
	Cursor     uint64 `json:"cursor,omitempty"`
}

const positionVersion = 1

func (a Applied) file() positionFile {
	return positionFile{
		Version:    positionVersion,
		Seq:        a.Seq,
		Epoch:      a.Epoch,
		Salt1:      a.Position.Salt.S1,
		Salt2:      a.Position.Salt.S2,
		Offset:     a.Position.Offset,
		Checksum1:  a.Position.Checksum.S1,
		Checksum2:  a.Position.Checksum.S2,
		PageSize:   a.PageSize,
		CommitSize: a.CommitSize,
		Cursor:     a.Cursor,
	}
}

func (p positionFile) applied() Applied {
	return Applied{
		Seq:   p.Seq,
		Epoch: p.Epoch,
		Position: walfile.Position{
			Salt:     walfile.Salt{S1: p.Salt1, S2: p.Salt2},
			Offset:   p.Offset,
			Checksum: walfile.Checksum{S1: p.Checksum1, S2: p.Checksum2},
		},
		PageSize:   p.PageSize,
		CommitSize: p.CommitSize,
		Cursor:     p.Cursor,
	}
}

// readPosition reads dir's position.json; ok is false when there is none.
func readPosition(dir string) (a Applied, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, PositionName))
	if errors.Is(err, fs.ErrNotExist) {
		return Applied{}, false, nil
	}
	if err != nil {
		return Applied{}, false, err
	}
	var p positionFile
	if err := json.Unmarshal(b, &p); err != nil {
		return Applied{}, false, fmt.Errorf("%w: %v", ErrBadPosition, err)
	}
	if p.Version != positionVersion {
		return Applied{}, false, fmt.Errorf("%w: version %d", ErrBadPosition, p.Version)
	}
	a = p.applied()
	if a.Seq > 0 && !validPageSize(a.PageSize) {
		return Applied{}, false, fmt.Errorf("%w: page size %d", ErrBadPosition, a.PageSize)
	}
	return a, true, nil
}

// writePosition replaces dir's position.json atomically and durably:
// temporary file, fsync, rename over position.json, fsync of dir. hook,
// if set, is called at the stages in between.
func writePosition(dir string, a Applied, hook func(Stage, int) error) error {
	b, err := json.Marshal(a.file())
	if err != nil {
		return err
	}
	b = append(b, '\n')
	final := filepath.Join(dir, PositionName)
	tmp := final + tmpSuffix
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	if err := callHook(hook, StagePositionTempWritten, 0); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if err := callHook(hook, StagePositionRenamed, 0); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeFileSync creates (or truncates) name, writes b and fsyncs it.
func writeFileSync(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir fsyncs a directory, making renames, creations and removals in
// it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fdatasync flushes f's data and the metadata needed to read it back
// (its size), which is all a replica file needs.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

func validPageSize(n uint32) bool {
	return n >= 512 && n <= 65536 && n&(n-1) == 0
}

func removeIfExists(name string) error {
	err := os.Remove(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
