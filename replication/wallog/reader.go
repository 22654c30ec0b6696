package wallog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BadEntryError reports an entry that cannot be applied: corrupt, or with
// parts missing. It matches ErrCorrupt or ErrTruncated. The Reader goes on
// after it with the next entry.
type BadEntryError struct {
	StreamSeq uint64 // the message where it was found
	Err       error
}

func (e *BadEntryError) Error() string {
	return fmt.Sprintf("wallog: entry at stream sequence %d: %v", e.StreamSeq, e.Err)
}

func (e *BadEntryError) Unwrap() error { return e.Err }

// Reader reads the log in order from a stream sequence, reassembling
// entries from their parts.
type Reader struct {
	cons jetstream.Consumer
	msgs jetstream.MessagesContext
	held jetstream.Msg // a message to read again (see add)

	// The entry being reassembled.
	cur     *Entry
	body    []byte
	parts   int
	nextPrt int
	// Pending is the number of messages after the last one read, as the
	// server said when it delivered it.
	pending uint64
}

// Read starts reading at stream sequence from (1: the start).
func (l *Log) Read(ctx context.Context, from uint64) (*Reader, error) {
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       max(from, 1),
		InactiveThreshold: 30 * time.Second,
	}
	cons, err := l.js.OrderedConsumer(ctx, l.stream.CachedInfo().Config.Name, cfg)
	if err != nil {
		return nil, fmt.Errorf("wallog: read from %d: %w", from, err)
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return nil, fmt.Errorf("wallog: read from %d: %w", from, err)
	}
	return &Reader{cons: cons, msgs: msgs}, nil
}

// Pending is how many messages followed the last one read when it was
// delivered: 0 means the Reader was at the log's end then.
func (r *Reader) Pending() uint64 { return r.pending }

// Next returns the next whole entry. A corrupt or truncated entry is a
// *BadEntryError; reading can go on after it.
func (r *Reader) Next(ctx context.Context) (Entry, error) {
	for {
		msg, err := r.held, error(nil)
		r.held = nil
		if msg == nil {
			msg, err = r.msgs.Next(jetstream.NextContext(ctx))
		}
		if err != nil {
			if ctx.Err() != nil {
				return Entry{}, ctx.Err()
			}
			return Entry{}, fmt.Errorf("wallog: read: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return Entry{}, fmt.Errorf("wallog: message metadata: %w", err)
		}
		r.pending = meta.NumPending
		e, done, err := r.add(msg, meta.Sequence.Stream)
		if err != nil {
			return Entry{}, &BadEntryError{StreamSeq: meta.Sequence.Stream, Err: err}
		}
		if done {
			return e, nil
		}
	}
}

// add takes one message; done when it completed an entry.
func (r *Reader) add(msg jetstream.Msg, streamSeq uint64) (Entry, bool, error) {
	h := msg.Headers()
	i, n, err := parsePart(h.Get(hPart))
	if err != nil {
		r.cur = nil
		return Entry{}, false, err
	}
	if i == 1 {
		if r.cur != nil {
			if ep, err := strconv.ParseUint(h.Get(hEpoch), 10, 64); err == nil && ep > r.cur.Epoch {
				// A newer leader's entry cut this one short: its
				// leader was fenced off mid-entry, and the rest can
				// never land. Not damage: the entry never existed.
				r.cur = nil
			} else {
				// An entry whose last parts never came: report it, and
				// read this message again as the start of the next.
				lost := r.cur.FirstStreamSeq
				r.cur, r.held = nil, msg
				return Entry{}, false, fmt.Errorf("%w: the entry from stream sequence %d ended after part %d", ErrTruncated, lost, r.nextPrt-1)
			}
		}
		if err := r.start(h, streamSeq, n); err != nil {
			return Entry{}, false, err
		}
	} else if r.cur == nil || i != r.nextPrt || n != r.parts || h.Get(hSeq) != strconv.FormatUint(r.cur.Seq, 10) {
		r.cur = nil
		return Entry{}, false, fmt.Errorf("%w: part %d/%d out of place", ErrTruncated, i, n)
	}
	r.body = append(r.body, msg.Data()...)
	r.nextPrt++
	if i < n {
		return Entry{}, false, nil
	}
	e := *r.cur
	r.cur = nil
	e.StreamSeq = streamSeq
	if e.Kind == KindTxn {
		if err := decodeFrames(&e.Txn, r.body); err != nil {
			return Entry{}, false, err
		}
		r.body = nil // the frames point into it
	}
	return e, true, nil
}

// start begins an entry from its first message's headers.
func (r *Reader) start(h interface{ Get(string) string }, streamSeq uint64, parts int) error {
	e := Entry{Kind: Kind(h.Get(hKind)), Node: h.Get(hNode), Snapshot: h.Get(hSnapshot), FirstStreamSeq: streamSeq}
	var err error
	num := func(name string) uint64 {
		v, perr := strconv.ParseUint(h.Get(name), 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("%w: header %s=%q", ErrCorrupt, name, h.Get(name))
		}
		return v
	}
	e.Epoch, e.Seq, e.Bytes = num(hEpoch), num(hSeq), num(hBytes)
	e.Time = time.Unix(0, int64(num(hTime)))
	if err != nil {
		return err
	}
	switch e.Kind {
	case KindTxn:
		if e.Txn, err = parseTxnHeader(h.Get(hTxn)); err != nil {
			return err
		}
	case KindSnapshot:
		if e.Snapshot == "" {
			return fmt.Errorf("%w: snapshot entry without %s", ErrCorrupt, hSnapshot)
		}
	case KindEpoch:
	default:
		return fmt.Errorf("%w: kind %q", ErrCorrupt, e.Kind)
	}
	if e.Kind != KindTxn && parts != 1 {
		return fmt.Errorf("%w: %s entry in %d parts", ErrCorrupt, e.Kind, parts)
	}
	r.cur, r.parts, r.nextPrt = &e, parts, 1
	r.body = r.body[:0]
	return nil
}

// Close stops reading.
func (r *Reader) Close() {
	r.msgs.Stop()
}

// IsBad reports whether err is a bad entry (the Reader can go on).
func IsBad(err error) bool {
	var b *BadEntryError
	return errors.As(err, &b)
}

// EntryAt reads the single-message entry (epoch or snapshot) at stream
// sequence seq.
func (l *Log) EntryAt(ctx context.Context, seq uint64) (Entry, error) {
	m, err := l.stream.GetMsg(ctx, seq)
	if err != nil {
		return Entry{}, fmt.Errorf("wallog: entry at %d: %w", seq, err)
	}
	var r Reader
	i, n, err := parsePart(m.Header.Get(hPart))
	if err != nil {
		return Entry{}, err
	}
	if i != 1 || n != 1 {
		return Entry{}, fmt.Errorf("wallog: entry at %d is part %d of %d", seq, i, n)
	}
	if err := r.start(m.Header, seq, 1); err != nil {
		return Entry{}, err
	}
	e := *r.cur
	e.StreamSeq = seq
	if e.Kind == KindTxn {
		if err := decodeFrames(&e.Txn, m.Data); err != nil {
			return Entry{}, err
		}
	}
	return e, nil
}
