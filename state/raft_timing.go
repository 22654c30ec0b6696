package state

import (
	"sync"
	"time"
	_ "unsafe" // go:linkname

	// The variables below live in the server package; importing it keeps
	// them linked in whatever else this binary uses.
	_ "github.com/nats-io/nats-server/v2/server"
)

// RaftTiming is how fast the Raft groups of embedded clustered servers
// (every JetStream stream with replicas, and the meta group) notice a dead
// leader and elect another.
//
// Why it matters: a lease renewal is a write to the leases stream, and a
// stream whose leader died accepts no write until its followers elect a new
// one. nats-server's defaults (heartbeat 1 s, election timeout 4–9 s) make
// that 4–9 s, longer than any lease TTL that still gives fast failover, so a
// node's death used to demote every healthy leader in the cluster whose
// lease stream it led. With the embedded timing the outage is at most
// MaxElection plus a vote, which a holder's lease outlives by construction
// (election.Timing.RideOut, checked by TestDefaultsRideOutElection).
//
// nats-server has no option for these: they are package variables, which we
// set through go:linkname. A renamed variable breaks the build (the linker
// cannot resolve it), never silently the timing. External NATS clusters keep
// their own (default) timing: there, give the lease a TTL above their
// election time (see the README, "How leadership stays safe").
type RaftTiming struct {
	Heartbeat   time.Duration // leader heartbeat; followers count silence from the last one
	MinElection time.Duration // a follower campaigns after this much silence, randomised up to MaxElection
	MaxElection time.Duration
	// LostQuorum is how long a leader that hears from no quorum keeps
	// leading. Nothing of ours depends on it (leases carry their own
	// deadline); kept well above the heartbeat so that a busy machine does
	// not make leaders step down needlessly.
	LostQuorum time.Duration
}

// EmbeddedRaftTiming is the timing of every embedded clustered server. The
// election range is wide (×1.75) so that two surviving followers rarely
// campaign in the same instant (a split vote costs another round).
var EmbeddedRaftTiming = RaftTiming{
	Heartbeat:   200 * time.Millisecond,
	MinElection: 800 * time.Millisecond,
	MaxElection: 1400 * time.Millisecond,
	LostQuorum:  5 * time.Second,
}

// WorstElectionOutage bounds how long a stream is without a leader after
// its leader dies: the longest silence a follower waits, plus one
// heartbeat of lateness and a vote round on a busy machine.
func (t RaftTiming) WorstElectionOutage() time.Duration {
	return t.MaxElection + t.Heartbeat
}

//go:linkname raftHeartbeat github.com/nats-io/nats-server/v2/server.hbInterval
var raftHeartbeat time.Duration

//go:linkname raftMinElection github.com/nats-io/nats-server/v2/server.minElectionTimeout
var raftMinElection time.Duration

//go:linkname raftMaxElection github.com/nats-io/nats-server/v2/server.maxElectionTimeout
var raftMaxElection time.Duration

//go:linkname raftLostQuorum github.com/nats-io/nats-server/v2/server.lostQuorumInterval
var raftLostQuorum time.Duration

var applyRaftTiming sync.Once

// tuneRaft sets EmbeddedRaftTiming process-wide, once, before the first
// clustered server starts: Raft nodes read these variables while they run,
// so they must not change under a running server.
func tuneRaft() {
	applyRaftTiming.Do(func() {
		t := EmbeddedRaftTiming
		raftHeartbeat, raftMinElection, raftMaxElection, raftLostQuorum = t.Heartbeat, t.MinElection, t.MaxElection, t.LostQuorum
	})
}

// CurrentRaftTiming reports the Raft timing in force in this process.
func CurrentRaftTiming() RaftTiming {
	return RaftTiming{Heartbeat: raftHeartbeat, MinElection: raftMinElection, MaxElection: raftMaxElection, LostQuorum: raftLostQuorum}
}
