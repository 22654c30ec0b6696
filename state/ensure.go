package state

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureKV opens a bucket, creating it with cfg if it does not exist. An
// existing bucket is used as it is: another process may have created it
// first, and changing a shared bucket's settings under it is never ours to do.
func EnsureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := retryUnanswered(ctx, func(actx context.Context) error {
		var err error
		kv, err = openOrCreate(actx, js, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// EnsureStream opens stream cfg.Name, creating it with cfg if it does not
// exist; like EnsureKV, an existing stream is used as it is.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	err := retryUnanswered(ctx, func(actx context.Context) error {
		_, err := js.Stream(actx, cfg.Name)
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		_, err = js.CreateStream(actx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	return nil
}

func openOrCreate(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil || !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	return kv, err
}

// retryUnanswered runs attempt with a short timeout, again and again while
// it fails the way a forming cluster fails (see settling), until ctx ends. The agents of a new cluster start together
// and create the same buckets at once; while the stream assignments
// settle, some of those requests go unanswered. A timed-out attempt is
// harmless to repeat: every step checks what is there first.
func retryUnanswered(ctx context.Context, attempt func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		if !settling(err) || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(50+rand.IntN(200)) * time.Millisecond):
		}
	}
}

// errNoSuitablePeers is JetStream's answer to a replicated stream asked for
// before enough servers have joined the meta group.
const errNoSuitablePeers = 10005

// settling reports whether err is what a cluster answers while its servers
// are still finding each other: no answer, or not enough peers yet.
func settling(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errNoSuitablePeers {
		return true
	}
	// A stream that is not found right after it was found or created is
	// still being assigned (EnsureStream handles a truly missing one).
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound)
}
