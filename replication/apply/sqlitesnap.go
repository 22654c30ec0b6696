//go:build linux

package apply

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// walIndexHdrSize is sizeof(WalIndexHdr), which is what sqlite3_snapshot
// holds: the WAL index header of the read transaction.
const walIndexHdrSize = 48

// walIndexHdr is the part of SQLite's WalIndexHdr (the wal-index header of
// https://www.sqlite.org/walformat.html#the_wal_index_file_format) a
// snapshot needs. Its integers are in the machine's byte order, except the
// salts, which SQLite copies byte for byte from the WAL header, where they
// are big-endian.
type walIndexHdr struct {
	PageSize uint32 // szPage decoded (65536 is stored as 1)
	MxFrame  uint32 // the last valid frame of the snapshot, 0 for none
	NPage    uint32 // database size in pages
	FrameCk  [2]uint32
	Salt     [2]uint32
}

func parseWalIndexHdr(b []byte) walIndexHdr {
	ne := binary.NativeEndian
	sz := uint32(ne.Uint16(b[14:16]))
	sz = sz&0xfe00 + (sz&0x0001)<<16
	return walIndexHdr{
		PageSize: sz,
		MxFrame:  ne.Uint32(b[16:20]),
		NPage:    ne.Uint32(b[20:24]),
		FrameCk:  [2]uint32{ne.Uint32(b[24:28]), ne.Uint32(b[28:32])},
		Salt:     [2]uint32{binary.BigEndian.Uint32(b[32:36]), binary.BigEndian.Uint32(b[36:40])},
	}
}

// errNoSnapshot: sqlite3_snapshot_get said SQLITE_ERROR: not WAL mode, or
// a WAL that was never written to.
var errNoSnapshot = errors.New("sqlite3_snapshot_get failed")

// snapshotHeader calls sqlite3_snapshot_get on the driver connection dc (a
// modernc.org/sqlite connection, as database/sql's Conn.Raw hands it out),
// which must be inside a transaction (after BEGIN). sqlite3_snapshot_get
// opens the read transaction if the connection has none yet and returns a
// copy of the WAL index header that read transaction uses.
//
// modernc.org/sqlite does not export the connection's sqlite3* handle or
// sqlite3_snapshot_get, so the handle and the connection's libc.TLS are
// read from the driver connection's fields db and tls by reflection, and
// the C function is called through modernc.org/sqlite/lib. Should the
// driver rename those fields, this fails with an error rather than
// guessing (the tests pin it).
func snapshotHeader(dc any) (walIndexHdr, error) {
	db, tls, err := sqliteHandle(dc)
	if err != nil {
		return walIndexHdr{}, err
	}
	zDb, err := libc.CString("main")
	if err != nil {
		return walIndexHdr{}, err
	}
	defer libc.Xfree(tls, zDb)
	pp := tls.Alloc(8)
	defer tls.Free(8)
	switch rc := sqlite3.Xsqlite3_snapshot_get(tls, db, zDb, pp); rc {
	case sqlite3.SQLITE_OK:
	case sqlite3.SQLITE_ERROR:
		// Not in WAL mode, or a WAL index header still all zero (a WAL
		// never written to).
		return walIndexHdr{}, errNoSnapshot
	default:
		return walIndexHdr{}, fmt.Errorf("apply: sqlite3_snapshot_get: rc %d", rc)
	}
	p := uintptr(binary.NativeEndian.Uint64(libc.GoBytes(pp, 8)))
	if p == 0 {
		return walIndexHdr{}, errNoSnapshot
	}
	defer sqlite3.Xsqlite3_snapshot_free(tls, p)
	return parseWalIndexHdr(libc.GoBytes(p, walIndexHdrSize)), nil
}

var tlsType = reflect.TypeOf((*libc.TLS)(nil))

// sqliteHandle returns the sqlite3* and libc.TLS of a modernc.org/sqlite
// driver connection.
func sqliteHandle(dc any) (db uintptr, tls *libc.TLS, err error) {
	v := reflect.ValueOf(dc)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct || v.Elem().Type().PkgPath() != "modernc.org/sqlite" {
		return 0, nil, fmt.Errorf("apply: driver connection %T is not modernc.org/sqlite's", dc)
	}
	e := v.Elem()
	fdb, ftls := e.FieldByName("db"), e.FieldByName("tls")
	if !fdb.IsValid() || fdb.Kind() != reflect.Uintptr || !ftls.IsValid() || ftls.Type() != tlsType {
		return 0, nil, fmt.Errorf("apply: %T has no db uintptr and tls *libc.TLS fields (modernc.org/sqlite changed?)", dc)
	}
	db = uintptr(fdb.Uint())
	tls = (*libc.TLS)(ftls.UnsafePointer())
	if db == 0 || tls == nil {
		return 0, nil, errors.New("apply: driver connection is closed")
	}
	return db, tls, nil
}
