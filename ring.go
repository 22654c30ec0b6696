package cluster

import "fmt"

// RingHandle answers partition questions for an app with Ring(n).
type RingHandle struct{ app *Application }

// Ring returns the app's ring handle.
func (a *Application) Ring() *RingHandle { return &RingHandle{app: a} }

// OwnsKey reports whether this node owns key's partition. Until the ring
// pattern lands it owns nothing; Run refuses ring apps meanwhile.
func (r *RingHandle) OwnsKey(key string) bool { return false }

// NodeFor returns the node that owns key's partition.
func (r *RingHandle) NodeFor(key string) (string, error) {
	return "", fmt.Errorf("app %s NodeFor(%q): ring pattern: %w", r.app.name, key, ErrNotAvailableYet)
}
