//go:build linux

package vip

import "errors"

// Sentinel errors. Callers match them with errors.Is; the returned errors wrap
// them with context (interface name, address).
var (
	// ErrLinkDown is returned by Add when the target link is administratively
	// or operationally down: an address on a dead link would be announced
	// nowhere and would only mislead Present.
	ErrLinkDown = errors.New("vip: link is down")

	// ErrNoInterface is returned when no interface matches: either the
	// configured name does not exist or inference found no up interface in
	// the VIP's subnet.
	ErrNoInterface = errors.New("vip: no matching interface")

	// ErrNotOwned is returned by Renew when the address is no longer on the
	// link (it expired, or someone removed it). The caller must treat the
	// VIP as lost rather than silently re-adding it.
	ErrNotOwned = errors.New("vip: address is not on the link")

	// ErrInvalidConfig is returned by New for an unusable Config.
	ErrInvalidConfig = errors.New("vip: invalid config")

	// ErrGuard is returned by HoldUntil when the guard process that
	// enforces the deadline cannot be started.
	ErrGuard = errors.New("vip: guard failed")
)
