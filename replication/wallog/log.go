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
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		Duplicates: 0,
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
}

// Fence appends the epoch entry of a new leader that has read and applied
// the log up to at (at.StreamSeq is the last message it saw) and returns
// its Appender. ErrFenced means the log grew meanwhile: read on and try
// again.
func (l *Log) Fence(ctx context.Context, epoch uint64, node string, at Position) (*Appender, Entry, error) {
	a := &Appender{log: l, epoch: epoch, node: node, pos: at}
	e := Entry{Kind: KindEpoch, Epoch: epoch, Seq: at.Seq, Node: node, Time: time.Now(), Bytes: at.Bytes}
	err := a.append(ctx, &e, nil)
	return a, e, err
}

// Position is where the Appender is.
func (a *Appender) Position() Position { return a.pos }

// Epoch is the Appender's epoch.
func (a *Appender) Epoch() uint64 { return a.epoch }

// AppendTxn appends e.Txn as transaction Position().Seq+1 and returns the
// entry as written.
func (a *Appender) AppendTxn(ctx context.Context, e Entry) (Entry, error) {
	// A malformed transaction would be a bad entry every reader skips,
	// a hole in the log: refuse it here.
	if err := e.Txn.Verify(); err != nil {
		return e, fmt.Errorf("wallog: append: %w", err)
	}
	e.Kind, e.Seq = KindTxn, a.pos.Seq+1
	e.Bytes = a.pos.Bytes + uint64(e.Txn.End-e.Txn.Start)
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	err := a.append(ctx, &e, encodeFrames(e.Txn))
	return e, err
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
	parts := max(1, (len(body)+a.log.maxPart-1)/a.log.maxPart)
	last := a.pos.StreamSeq
	for i := range parts {
		ph := h
		if parts > 1 {
			ph = nats.Header{}
			for k, v := range h {
				ph[k] = v
			}
		}
		ph.Set(hPart, fmt.Sprintf("%d/%d", i+1, parts))
		lo, hi := i*a.log.maxPart, min(len(body), (i+1)*a.log.maxPart)
		msg := &nats.Msg{Subject: a.log.subject, Header: ph, Data: body[lo:hi]}
		ack, err := a.log.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequence(last))
		if err != nil {
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
				apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
				return fmt.Errorf("%w: epoch %d expected the log to end at %d: %v", ErrFenced, a.epoch, last, err)
			}
			// Unknown outcome (a timeout): the message may be in. The
			// next append expects the old end, so a retry can never
			// double it: it is fenced instead, and the leader steps
			// down; its successor reads what got in.
			return fmt.Errorf("wallog: append: %w", err)
		}
		if i == 0 {
			e.FirstStreamSeq = ack.Sequence
		}
		last = ack.Sequence
	}
	e.StreamSeq = last
	a.pos.StreamSeq = last
	a.pos.Seq = max(a.pos.Seq, e.Seq)
	a.pos.Bytes = e.Bytes
	return nil
}
