// Package apply is the standby side's storage core of SQLite replication:
// a replica database file that committed transactions captured from the
// leader's WAL (walfile.Txn) are applied to, page-exact snapshots to seed
// it, and the helpers that check and promote it.
//
// # The replica directory
//
// A Replica owns one directory holding
//
//	replica.db     the database file, page for page the leader's database
//	               at the applied position (page 1 still says WAL mode)
//	position.json  the Applied position: log seq and epoch, the WAL
//	               position and chain checksum after the last applied
//	               transaction, page size and commit size
//	LOCK           flock(2)ed while a Replica is open, so that two
//	               Replicas (or a restore) never share a directory
//
// # Crash safety
//
// Apply writes the transaction's page images, truncates the file to the
// commit size, fsyncs the file, and only then replaces position.json
// atomically (temporary file, fsync, rename, fsync of the directory). Two
// properties follow, whatever the point at which the process or machine
// stops:
//
//   - The position on disk never claims more than the file holds: it names
//     transaction N only once N's pages are durable.
//   - Re-applying transaction N+1, the one after the recorded position, is
//     idempotent: writing a page image is idempotent, and so is truncating
//     to the commit size, so a half-applied N+1 is completed, not doubled.
//
// ApplyBatch does the same for several consecutive transactions with one
// data fsync and one position write, the batch taking the place of N+1.
// ApplyBatchDeferred leaves the position write to a later SyncPosition:
// the file may then run several batches ahead of position.json, and the
// same argument applies to all of them, re-applied in order.
//
// Between a crash in the middle of an Apply and the re-application of that
// transaction the file can be torn (some of N+1's pages, not all): the file
// is a consistent database exactly at the recorded position's boundary
// once the transaction after it, if it was in flight, is applied again.
// A standby that restarts therefore resumes the log at Applied().Seq+1
// before it checks or promotes its replica.
//
// A missing position.json means nothing is applied: OpenReplica then
// empties replica.db, whose content no position vouches for.
//
// # The chain
//
// Apply refuses a transaction that does not follow the applied one: a log
// sequence number other than Seq+1 (ErrGap), an epoch lower than the
// applied one (ErrStaleEpoch), and, within one WAL generation (same salt),
// a transaction whose Pre checksum is not the checksum after the applied
// transaction (ErrChainBroken). A transaction of a new WAL generation (a
// different salt; its Pre is the new WAL header's checksum) is accepted
// when the seq continues: when the leader's WAL restarts, its capture has
// read everything up to the restart, so the log's seq vouches for
// continuity across generations, which the checksums cannot. A replica
// whose position carries no checksum (Offset 0: no WAL position known;
// Offset 32: a snapshot taken at the start of a WAL generation, before
// its header was fixed) accepts the next transaction on its seq alone.
//
// # Snapshots
//
// TakeSnapshot copies a live database page for page from inside one read
// transaction, through the sqlite_dbpage virtual table, and reads the WAL
// index header of that very read transaction with sqlite3_snapshot_get, so
// the image is tagged with the WAL position it corresponds to. See
// TakeSnapshot for why this is consistent and why neither VACUUM INTO nor
// the backup API is used.
package apply
