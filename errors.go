package cluster

import (
	"errors"

	"github.com/ozanturksever/go-cluster/election"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNoInstance: no active instance of the app can take the call.
	ErrNoInstance = errors.New("no active instance")
	// ErrNodeIDInUse: another live process runs with the same node ID.
	ErrNodeIDInUse = errors.New("node ID in use by another process")
	// ErrDuplicateApp: an app of that name is already registered.
	ErrDuplicateApp = errors.New("app already registered")
	// ErrInvalidName: a name that cannot be used in NATS subjects or buckets.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidOption: an option with a value that cannot work.
	ErrInvalidOption = errors.New("invalid option")
	// ErrNotRegistered: the app is not registered with a platform yet.
	ErrNotRegistered = errors.New("app not registered with a platform")
	// ErrNoPlatform: cluster.Call was used before any platform was created.
	ErrNoPlatform = errors.New("no platform: call NewPlatform first")
	// ErrNotLeader: the operation needs the leader (e.g. StepDown on a standby).
	ErrNotLeader = election.ErrNotLeader
	// ErrLockNotHeld: Unlock of a lock that is not (or no longer) ours.
	ErrLockNotHeld = errors.New("lock not held")
	// ErrKeyNotFound: KV key absent or deleted.
	ErrKeyNotFound = errors.New("key not found")
	// ErrRevisionMismatch: a KV Update/Create lost a compare-and-set.
	ErrRevisionMismatch = errors.New("revision mismatch")
	// ErrClosed: the platform was closed.
	ErrClosed = errors.New("platform closed")
)

// RemoteError is a handler's error carried back to the caller.
type RemoteError struct {
	App, Method, Node string
	Message           string
}

func (e *RemoteError) Error() string {
	return "call " + e.App + "." + e.Method + " on " + e.Node + ": " + e.Message
}
