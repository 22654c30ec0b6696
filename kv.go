package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/state"
)

// KV is an app's key-value store, shared by all its instances.
type KV struct {
	app *Application

	mu sync.Mutex
	kv jetstream.KeyValue
}

// KVEntry is one value of a key with its revision.
type KVEntry struct {
	Key      string
	Value    []byte
	Revision uint64
	Deleted  bool
}

// KV returns the app's key-value store. The bucket is opened (and created)
// on first use, once the app is registered with a platform.
func (a *Application) KV() *KV {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.kv == nil {
		a.kv = &KV{app: a}
	}
	return a.kv
}

func (k *KV) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kv != nil {
		return k.kv, nil
	}
	p, err := k.app.getPlatform()
	if err != nil {
		return nil, err
	}
	if p.initErr != nil {
		return nil, p.initErr
	}
	cfg := jetstream.KeyValueConfig{Bucket: p.layout.KVBucket(k.app.name), History: 1, Replicas: p.cfg.replicas, Storage: jetstream.FileStorage}
	kv, err := state.EnsureKV(ctx, p.js, cfg)
	if err != nil {
		return nil, fmt.Errorf("app %s KV: %w", k.app.name, err)
	}
	k.kv = kv
	return kv, nil
}

func (k *KV) wrap(op, key string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		err = ErrKeyNotFound
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch), state.IsCASFailure(err):
		err = fmt.Errorf("%w: %w", ErrRevisionMismatch, err)
	}
	return fmt.Errorf("app %s KV %s %q: %w", k.app.name, op, key, err)
}

// Get returns the value of key, or ErrKeyNotFound.
func (k *KV) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := k.Entry(ctx, key)
	if err != nil {
		return nil, err
	}
	return e.Value, nil
}

// Entry returns the value of key with its revision.
func (k *KV) Entry(ctx context.Context, key string) (KVEntry, error) {
	kv, err := k.open(ctx, key)
	if err != nil {
		return KVEntry{}, err
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return KVEntry{}, k.wrap("get", key, err)
	}
	return KVEntry{Key: key, Value: e.Value(), Revision: e.Revision()}, nil
}

// Put sets key to value and returns the new revision.
func (k *KV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	kv, err := k.open(ctx, key)
	if err != nil {
		return 0, err
	}
	rev, err := kv.Put(ctx, key, value)
	if err != nil {
		return 0, k.wrap("put", key, err)
	}
	return rev, nil
}

// Create sets key only if it does not exist; ErrRevisionMismatch otherwise.
func (k *KV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	kv, err := k.open(ctx, key)
	if err != nil {
		return 0, err
	}
	rev, err := kv.Create(ctx, key, value)
	if err != nil {
		return 0, k.wrap("create", key, err)
	}
	return rev, nil
}

// Update sets key only if its revision is still rev; ErrRevisionMismatch otherwise.
func (k *KV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	kv, err := k.open(ctx, key)
	if err != nil {
		return 0, err
	}
	n, err := kv.Update(ctx, key, value, rev)
	if err != nil {
		return 0, k.wrap("update", key, err)
	}
	return n, nil
}

// Delete removes key.
func (k *KV) Delete(ctx context.Context, key string) error {
	kv, err := k.open(ctx, key)
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, key); err != nil {
		return k.wrap("delete", key, err)
	}
	return nil
}

// Keys lists the keys present.
func (k *KV) Keys(ctx context.Context) ([]string, error) {
	kv, err := k.bucket(ctx)
	if err != nil {
		return nil, err
	}
	p, err := k.app.getPlatform()
	if err != nil {
		return nil, err
	}
	entries, err := state.ListEntries(ctx, p.js, kv, ">")
	if err != nil {
		return nil, fmt.Errorf("app %s KV keys: %w", k.app.name, err)
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key()
	}
	slices.Sort(keys)
	return keys, nil
}

// Watch sends the current entries matching pattern (NATS wildcards '*' and
// '>'), then the changes, in order, until ctx ends. The bucket keeps one
// revision per key, so a watcher that falls behind a key changing quickly
// sees its latest value, not every value it had: watch for state, not for
// a log of events.
func (k *KV) Watch(ctx context.Context, pattern string) (<-chan KVEntry, error) {
	kv, err := k.bucket(ctx)
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(ctx, pattern)
	if err != nil {
		return nil, fmt.Errorf("app %s KV watch %q: %w", k.app.name, pattern, err)
	}
	out := make(chan KVEntry, 16)
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				ev := KVEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Deleted: e.Operation() != jetstream.KeyValuePut}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (k *KV) open(ctx context.Context, key string) (jetstream.KeyValue, error) {
	if err := state.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("app %s KV: %w: %w", k.app.name, ErrInvalidName, err)
	}
	return k.bucket(ctx)
}
