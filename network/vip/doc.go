// Package vip manages the node-local half of a virtual IP that follows
// leadership: adding the address to a link, announcing it to the segment,
// keeping it alive with a finite lifetime and removing it again.
//
// Everything is done with netlink and raw sockets; the package never runs
// ip(8), arping(8) or any other subprocess, so it works in minimal images
// and its behaviour does not depend on which iproute2 is installed.
//
// The lifetime matters for safety: a leader that dies without removing its
// VIP would otherwise leave the address on the link forever, and after a
// failover two nodes would answer for it. With Config.ValidLifetime set the
// kernel expires the address by itself unless the leader keeps calling
// Renew, which it does with each lease renewal.
//
// The lifetime alone is coarse (whole seconds, expired up to a second
// late) and needs the leader to be dead, not merely frozen: a leader
// stopped by SIGSTOP or starved of CPU keeps an address with time left on
// it while a standby takes over. HoldUntil therefore hands the lease
// deadline to a guard, a small process re-executed from the same binary,
// which removes the address at that deadline (or at once when the holder
// dies) without the holder's help; see guard.go.
package vip
