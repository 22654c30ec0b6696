package wallog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config names an app's log and sets its storage.
type Config struct {
	Stream, Subject string
	Replicas        int // the platform's replica count; 0 means 1
	// MaxPart is the largest message body (0: the server's max payload
	// less 8 KiB for headers).
	MaxPart int
}

// Log is one app's replication log.
type Log struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	subject string
	maxPart int
}

// Open creates the log's stream if it does not exist and opens it.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Log, error) {
	replicas := max(cfg.Replicas, 1)
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     cfg.Stream,
		Subjects: []string{cfg.Subject},
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
		// Retention is by purge after a snapshot (Purge), never by a
		// limit that could drop what a standby still needs.
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		// Messages carry IDs for the fencing chain (Appender.expect);
		// the duplicate window that comes with them needs to cover only
		// a retried publish.
		Duplicates: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("wallog: open stream %s: %w", cfg.Stream, err)
	}
	l := &Log{js: js, stream: s, subject: cfg.Subject, maxPart: cfg.MaxPart}
	if l.maxPart <= 0 {
		// Room for the headers; at least half the payload on a server
		// configured with a tiny one.
		mp := int(js.Conn().MaxPayload())
		l.maxPart = max(mp-8<<10, mp/2, 1)
	}
	return l, nil
}

// Stream is the stream's name.
func (l *Log) Stream() string { return l.stream.CachedInfo().Config.Name }

// Tail is what the log holds at its end.
type Tail struct {
	FirstStreamSeq, LastStreamSeq uint64
	Messages, Bytes               uint64
}

// Tail reads the stream's state.
func (l *Log) Tail(ctx context.Context) (Tail, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return Tail{}, fmt.Errorf("wallog: stream info: %w", err)
	}
	return Tail{
		FirstStreamSeq: info.State.FirstSeq, LastStreamSeq: info.State.LastSeq,
		Messages: info.State.Msgs, Bytes: info.State.Bytes,
	}, nil
}

// Purge removes the messages before stream sequence keepFrom (retention:
// everything a snapshot at keepFrom-1 or later makes unnecessary).
func (l *Log) Purge(ctx context.Context, keepFrom uint64) error {
	if keepFrom <= 1 {
		return nil
	}
	if err := l.stream.Purge(ctx, jetstream.WithPurgeSequence(keepFrom)); err != nil {
		return fmt.Errorf("wallog: purge below %d: %w", keepFrom, err)
	}
	return nil
}

// Position is where an Appender continues: the last stream sequence, the
// last transaction's seq and the byte count after it.
type Position struct {
	StreamSeq, Seq, Bytes uint64
}

// Appender appends one leader's entries. It is not safe for concurrent
// use: one goroutine ships.
type Appender struct {
	log   *Log
	epoch uint64
	node  string
	pos   Position
	// lastID is the message ID of this Appender's last message: every
	// append after the epoch entry expects it to be the stream's last
	// (see expect).
	lastID string
}

// msgID names a message by epoch and the stream sequence it is meant to
// land at: unique, since one epoch has one leader.
func (a *Appender) msgID(streamSeq uint64) string {
	return fmt.Sprintf("gcl-%d-%d", a.epoch, streamSeq)
}

// expect is the precondition of the next message: after the epoch entry,
// that the stream's last message is this Appender's last one. A message
// ID, not a sequence number, because entries are published ahead of their
// acknowledgements: had a newer leader's entry landed where this
// Appender's failed message was meant to, a sequence number would match
// and the next message would land after the newer leader's; its ID
// cannot match.
func (a *Appender) expect(last uint64) jetstream.PublishOpt {
	if a.lastID == "" {
		return jetstream.WithExpectLastSequence(last)
	}
	return jetstream.WithExpectLastMsgID(a.lastID)
}

// Fence appends the epoch entry of a new leader, expecting the log to end
// at stream sequence last (what Tail said), and returns its Appender. From
// then on no older leader can append (see the package doc), so the new
// leader can read the log up to its epoch entry and know it has all of it;
// an entry an older leader was writing in parts when fenced stays
// incomplete and readers drop it. The Appender numbers transactions from
// 1 until SetNext says where the log stands. ErrFenced means the log grew
// meanwhile: read Tail again and retry.
func (l *Log) Fence(ctx context.Context, epoch uint64, node string, last uint64) (*Appender, Entry, error) {
	a := &Appender{log: l, epoch: epoch, node: node, pos: Position{StreamSeq: last}}
	e := Entry{Kind: KindEpoch, Epoch: epoch, Node: node, Time: time.Now()}
	err := a.append(ctx, &e, nil)
	return a, e, err
}

// SetNext tells a fenced Appender the last transaction in the log (its
// seq and byte count), once its leader has read up to its epoch entry.
func (a *Appender) SetNext(seq, bytes uint64) {
	a.pos.Seq, a.pos.Bytes = seq, bytes
}

// Position is where the Appender is.
func (a *Appender) Position() Position { return a.pos }

// Epoch is the Appender's epoch.
func (a *Appender) Epoch() uint64 { return a.epoch }

// AppendTxn appends e.Txn as transaction Position().Seq+1 and returns the
// entry as written.
func (a *Appender) AppendTxn(ctx context.Context, e Entry) (Entry, error) {
	if err := a.nextTxn(&e); err != nil {
		return e, err
	}
	err := a.append(ctx, &e, encodeFrames(e.Txn))
	return e, err
}

// nextTxn makes e the Appender's next transaction entry.
func (a *Appender) nextTxn(e *Entry) error {
	// A malformed transaction would be a bad entry every reader skips,
	// a hole in the log: refuse it here.
	if err := e.Txn.Verify(); err != nil {
		return fmt.Errorf("wallog: append: %w", err)
	}
	e.Kind, e.Seq = KindTxn, a.pos.Seq+1
	e.Bytes = a.pos.Bytes + uint64(e.Txn.End-e.Txn.Start)
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Epoch, e.Node = a.epoch, a.node
	return nil
}

// AppendSnapshot appends a snapshot entry: the database is the object
// name, whose state is after transaction seq (Position().Seq+1 when it
// replaces transactions that were never shipped; Position().Seq when it
// only records a copy).
func (a *Appender) AppendSnapshot(ctx context.Context, name string, seq uint64) (Entry, error) {
	e := Entry{Kind: KindSnapshot, Seq: seq, Snapshot: name, Time: time.Now(), Bytes: a.pos.Bytes}
	err := a.append(ctx, &e, nil)
	return e, err
}

// append publishes e (in parts if body is large) expecting the log to end
// where the Appender believes it does.
func (a *Appender) append(ctx context.Context, e *Entry, body []byte) error {
	e.Epoch, e.Node = a.epoch, a.node
	h := a.headers(e)
	parts := max(1, (len(body)+a.log.maxPart-1)/a.log.maxPart)
	last := a.pos.StreamSeq
	for i := range parts {
		lo, hi := i*a.log.maxPart, min(len(body), (i+1)*a.log.maxPart)
		msg := &nats.Msg{Subject: a.log.subject, Header: partHeader(h, i, parts), Data: body[lo:hi]}
		id := a.msgID(last + 1)
		ack, err := a.log.js.PublishMsg(ctx, msg, a.expect(last), jetstream.WithMsgID(id))
		if err != nil {
			return appendError(err, a.epoch, last)
		}
		if ack.Sequence != last+1 {
			return fmt.Errorf("wallog: append landed at %d, expected %d", ack.Sequence, last+1)
		}
		if i == 0 {
			e.FirstStreamSeq = ack.Sequence
		}
		last, a.lastID = ack.Sequence, id
	}
	e.StreamSeq = last
	a.pos.StreamSeq = last
	a.pos.Seq = max(a.pos.Seq, e.Seq)
	a.pos.Bytes = e.Bytes
	return nil
}

// Pending is an entry published without waiting for its acknowledgement
// (AppendTxnAsync).
type Pending struct {
	Entry Entry
	futs  []jetstream.PubAckFuture
	want  []uint64 // the stream sequence each part must land at
	epoch uint64
}

// AppendTxnAsync is AppendTxn without waiting: the entry's messages go out
// at once and Pending.Wait reports whether they landed. The Appender moves
// on as if they had, so that a leader keeps many entries in flight; since
// every message still expects the one before it to be the stream's last,
// once one fails every later one fails too: the caller waits for its
// Pendings in order and stops at the first error. Entry.StreamSeq and
// FirstStreamSeq are where the entry will land.
func (a *Appender) AppendTxnAsync(e Entry) (*Pending, error) {
	if err := a.nextTxn(&e); err != nil {
		return nil, err
	}
	h := a.headers(&e)
	body := encodeFrames(e.Txn)
	parts := max(1, (len(body)+a.log.maxPart-1)/a.log.maxPart)
	p := &Pending{epoch: a.epoch}
	last := a.pos.StreamSeq
	for i := range parts {
		ph := partHeader(h, i, parts)
		lo, hi := i*a.log.maxPart, min(len(body), (i+1)*a.log.maxPart)
		msg := &nats.Msg{Subject: a.log.subject, Header: ph, Data: body[lo:hi]}
		id := a.msgID(last + 1)
		fut, err := a.log.js.PublishMsgAsync(msg, a.expect(last), jetstream.WithMsgID(id))
		if err != nil {
			// Not sent: nothing after it may be either; the Appender
			// stays where it was before this entry only if no part
			// went out, which the caller cannot tell: it must stop.
			return nil, fmt.Errorf("wallog: append: %w", err)
		}
		last, a.lastID = last+1, id
		p.futs = append(p.futs, fut)
		p.want = append(p.want, last)
	}
	e.FirstStreamSeq, e.StreamSeq = a.pos.StreamSeq+1, last
	p.Entry = e
	a.pos = Position{StreamSeq: last, Seq: e.Seq, Bytes: e.Bytes}
	return p, nil
}

// Wait waits until every message of the entry was acknowledged where it
// was meant to land.
func (p *Pending) Wait(ctx context.Context) error {
	for i, fut := range p.futs {
		select {
		case ack := <-fut.Ok():
			if ack.Sequence != p.want[i] {
				return fmt.Errorf("wallog: entry part landed at %d, expected %d", ack.Sequence, p.want[i])
			}
		case err := <-fut.Err():
			return appendError(err, p.epoch, p.want[i]-1)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// errCodeWrongLastMsgID is the server's JSStreamWrongLastMsgIDErrF
// (nats.go names no constant for it).
const errCodeWrongLastMsgID jetstream.ErrorCode = 10070

// appendError classifies a failed publish: a wrong last sequence means a
// newer leader appended (ErrFenced).
func appendError(err error, epoch, expected uint64) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant ||
		apiErr.ErrorCode == errCodeWrongLastMsgID) {
		return fmt.Errorf("%w: epoch %d expected the log to end at %d: %v", ErrFenced, epoch, expected, err)
	}
	// Unknown outcome (a timeout): the message may be in. Every later
	// append expects it not to be or to be, one of which fails: the
	// leader steps down and its successor reads what got in.
	return fmt.Errorf("wallog: append: %w", err)
}

// headers are an entry's message headers, without the part.
func (a *Appender) headers(e *Entry) nats.Header {
	h := nats.Header{}
	h.Set(hKind, string(e.Kind))
	h.Set(hEpoch, strconv.FormatUint(e.Epoch, 10))
	h.Set(hSeq, strconv.FormatUint(e.Seq, 10))
	h.Set(hNode, e.Node)
	h.Set(hTime, strconv.FormatInt(e.Time.UnixNano(), 10))
	h.Set(hBytes, strconv.FormatUint(e.Bytes, 10))
	switch e.Kind {
	case KindTxn:
		h.Set(hTxn, txnHeader(e.Txn))
	case KindSnapshot:
		h.Set(hSnapshot, e.Snapshot)
	}
	return h
}

// partHeader is h with part i+1 of n (a copy when there are several).
func partHeader(h nats.Header, i, n int) nats.Header {
	ph := h
	if n > 1 {
		ph = make(nats.Header, len(h)+1)
		for k, v := range h {
			ph[k] = v
		}
	}
	ph.Set(hPart, fmt.Sprintf("%d/%d", i+1, n))
	return ph
}
