//go:build linux

// Package snapstore keeps an app's database snapshots in a JetStream object
// store: page-exact images (apply.SnapshotInfo says what each one is), with
// the log position they stand for, so that a standby can start from one and
// read the log on from there.
package snapstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/replication/apply"
)

// ErrNoSnapshot: the store holds no (matching) snapshot.
var ErrNoSnapshot = errors.New("snapstore: no snapshot")

// Meta describes a stored snapshot.
type Meta struct {
	Name string
	// SnapshotInfo's Cursor is the log's stream sequence of the entry the
	// snapshot's state ends with: a standby restored from it reads on from
	// Cursor+1.
	apply.SnapshotInfo
	// Bytes is the log's byte count at that entry (wallog.Entry.Bytes).
	Bytes uint64
	// Reset marks a snapshot a leader took to start over (it lost track
	// of its WAL): valid only once the log holds its entry at Cursor.
	Reset   bool
	Node    string
	Created time.Time
}

// Store is one app's snapshot bucket.
type Store struct {
	obj jetstream.ObjectStore
}

// Open opens the bucket, creating it with replicas if it does not exist.
// An existing bucket is left as it is: a reader (the CLI) must not change
// the replica count the platform chose.
func Open(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Store, error) {
	obj, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obj, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:   bucket,
			Storage:  jetstream.FileStorage,
			Replicas: max(replicas, 1),
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			obj, err = js.ObjectStore(ctx, bucket) // made meanwhile
		}
	}
	if err != nil {
		return nil, fmt.Errorf("snapstore: open %s: %w", bucket, err)
	}
	return &Store{obj: obj}, nil
}

// name orders snapshots by seq, then epoch, as strings.
func name(m Meta) string { return fmt.Sprintf("snap-%020d-%020d", m.Seq, m.Epoch) }

// Put uploads the file at path (exactly m.Size() bytes, hashing to
// m.SHA256) and returns the stored Meta with its name.
func (s *Store) Put(ctx context.Context, path string, m Meta) (Meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return Meta{}, fmt.Errorf("snapstore: put: %w", err)
	}
	defer f.Close()
	m.Name = name(m)
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	// The upload is checked against m as it streams: a file that is not
	// what m says fails here, not at a standby's restore. The object
	// store keeps the old object until the new one is complete.
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(f, h)}
	_, err = s.obj.Put(ctx, jetstream.ObjectMeta{Name: m.Name, Metadata: encodeMeta(m)}, &checkedReader{cr: cr, h: h, want: m})
	if err != nil {
		return Meta{}, fmt.Errorf("snapstore: put %s: %w", m.Name, err)
	}
	return m, nil
}

// List returns the snapshots, oldest (lowest seq) first.
func (s *Store) List(ctx context.Context) ([]Meta, error) {
	infos, err := s.obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapstore: list: %w", err)
	}
	var out []Meta
	for _, info := range infos {
		m, err := decodeMeta(info.Name, info.Metadata)
		if err != nil {
			continue // not ours, or half-written metadata: never restored from
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Meta) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Epoch, b.Epoch))
	})
	return out, nil
}

// Latest returns the newest snapshot whose Cursor is at least
// minCursor (0: any).
func (s *Store) Latest(ctx context.Context, minCursor uint64) (Meta, error) {
	list, err := s.List(ctx)
	if err != nil {
		return Meta{}, err
	}
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Cursor >= minCursor {
			return list[i], nil
		}
	}
	return Meta{}, ErrNoSnapshot
}

// Get returns the snapshot named name and a reader of its bytes.
func (s *Store) Get(ctx context.Context, name string) (Meta, io.ReadCloser, error) {
	r, err := s.obj.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Meta{}, nil, fmt.Errorf("%w: %s", ErrNoSnapshot, name)
	}
	if err != nil {
		return Meta{}, nil, fmt.Errorf("snapstore: get %s: %w", name, err)
	}
	info, err := r.Info()
	if err != nil {
		r.Close()
		return Meta{}, nil, fmt.Errorf("snapstore: get %s: %w", name, err)
	}
	m, err := decodeMeta(info.Name, info.Metadata)
	if err != nil {
		r.Close()
		return Meta{}, nil, err
	}
	return m, r, nil
}

// Restore makes dir a replica holding the snapshot named name (checked
// against its SHA-256 before it is installed) and opens it.
func (s *Store) Restore(ctx context.Context, name, dir string, opts ...apply.Option) (*apply.Replica, Meta, error) {
	return s.RestoreAt(ctx, name, dir, 0, opts...)
}

// RestoreAt is Restore with the replica's log cursor set to cursor (0:
// the snapshot's own), for a snapshot reached through a log entry, whose
// position in the log is the entry's.
func (s *Store) RestoreAt(ctx context.Context, name, dir string, cursor uint64, opts ...apply.Option) (*apply.Replica, Meta, error) {
	m, r, err := s.Get(ctx, name)
	if err != nil {
		return nil, Meta{}, err
	}
	defer r.Close()
	info := m.SnapshotInfo
	if cursor != 0 {
		info.Cursor = cursor
	}
	rep, err := apply.RestoreSnapshot(dir, r, info, opts...)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("snapstore: restore %s: %w", name, err)
	}
	return rep, m, nil
}

// Prune keeps the newest keep snapshots that valid accepts (nil: all) and
// deletes every older one, valid or not; snapshots newer than the oldest
// kept stay whatever valid says (a snapshot valid later, such as a reset
// snapshot whose log entry is on its way). It returns the oldest kept
// (the log may be purged up to its Cursor).
func (s *Store) Prune(ctx context.Context, keep int, valid func(Meta) bool) (Meta, error) {
	list, err := s.List(ctx)
	if err != nil {
		return Meta{}, err
	}
	keep = max(keep, 1)
	oldest := -1
	for i, kept := len(list)-1, 0; i >= 0 && kept < keep; i-- {
		if valid == nil || valid(list[i]) {
			oldest, kept = i, kept+1
		}
	}
	if oldest < 0 {
		return Meta{}, ErrNoSnapshot
	}
	for _, m := range list[:oldest] {
		if err := s.obj.Delete(ctx, m.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return Meta{}, fmt.Errorf("snapstore: prune %s: %w", m.Name, err)
		}
	}
	return list[oldest], nil
}

func encodeMeta(m Meta) map[string]string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	p := m.Position
	return map[string]string{
		"seq": u(m.Seq), "epoch": u(m.Epoch), "stream-seq": u(m.Cursor), "bytes": u(m.Bytes),
		"page-size": u(uint64(m.PageSize)), "page-count": u(uint64(m.PageCount)),
		"sha256": hex.EncodeToString(m.SHA256[:]),
		"wal":    fmt.Sprintf("%08x%08x %d %08x%08x", p.Salt.S1, p.Salt.S2, p.Offset, p.Checksum.S1, p.Checksum.S2),
		"node":   m.Node, "created": m.Created.UTC().Format(time.RFC3339Nano),
		"reset": strconv.FormatBool(m.Reset),
	}
}

func decodeMeta(objName string, md map[string]string) (Meta, error) {
	m := Meta{Name: objName, Node: md["node"], Reset: md["reset"] == "true"}
	var errs []error
	u := func(k string) uint64 {
		v, err := strconv.ParseUint(md[k], 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q", k, md[k]))
		}
		return v
	}
	m.Seq, m.Epoch, m.Cursor, m.Bytes = u("seq"), u("epoch"), u("stream-seq"), u("bytes")
	m.PageSize, m.PageCount = uint32(u("page-size")), uint32(u("page-count"))
	if b, err := hex.DecodeString(md["sha256"]); err != nil || len(b) != len(m.SHA256) {
		errs = append(errs, fmt.Errorf("sha256=%q", md["sha256"]))
	} else {
		copy(m.SHA256[:], b)
	}
	var salt, ck string
	if _, err := fmt.Sscanf(md["wal"], "%s %d %s", &salt, &m.Position.Offset, &ck); err != nil {
		errs = append(errs, fmt.Errorf("wal=%q", md["wal"]))
	} else {
		m.Position.Salt.S1, m.Position.Salt.S2 = hexPair(salt, &errs)
		m.Position.Checksum.S1, m.Position.Checksum.S2 = hexPair(ck, &errs)
	}
	if t, err := time.Parse(time.RFC3339Nano, md["created"]); err == nil {
		m.Created = t
	}
	if len(errs) > 0 || !strings.HasPrefix(objName, "snap-") {
		return Meta{}, fmt.Errorf("snapstore: %s: bad metadata: %w", objName, errors.Join(errs...))
	}
	return m, nil
}

func hexPair(s string, errs *[]error) (uint32, uint32) {
	if len(s) != 16 {
		*errs = append(*errs, fmt.Errorf("bad pair %q", s))
		return 0, 0
	}
	a, e1 := strconv.ParseUint(s[:8], 16, 32)
	b, e2 := strconv.ParseUint(s[8:], 16, 32)
	if e1 != nil || e2 != nil {
		*errs = append(*errs, fmt.Errorf("bad pair %q", s))
	}
	return uint32(a), uint32(b)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// checkedReader fails the upload at EOF when the bytes read are not the
// snapshot m describes (length and SHA-256).
type checkedReader struct {
	cr   *countingReader
	h    hash.Hash
	want Meta
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.cr.Read(p)
	if c.cr.n > c.want.Size() {
		return n, fmt.Errorf("%w: file longer than %d bytes", apply.ErrSnapshotMismatch, c.want.Size())
	}
	if errors.Is(err, io.EOF) {
		if c.cr.n != c.want.Size() {
			return n, fmt.Errorf("%w: %d bytes, want %d", apply.ErrSnapshotMismatch, c.cr.n, c.want.Size())
		}
		if !bytes.Equal(c.h.Sum(nil), c.want.SHA256[:]) {
			return n, fmt.Errorf("%w: SHA-256 differs", apply.ErrSnapshotMismatch)
		}
	}
	return n, err
}
