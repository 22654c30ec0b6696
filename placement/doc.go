// Package placement decides which nodes run which apps. It is pure: no I/O,
// no clocks, no randomness; equal inputs give equal plans. The scheduler
// feeds it the wanted apps and the nodes with what they run now (Input) and
// carries out the Plan it returns. For ring apps the plan picks the member
// nodes; which member owns which partition is the ring assignment's job.
//
// The model follows Nomad's scheduler: small feasibility and ranking steps,
// each testable alone, composed in a fixed order. Place
//
//  1. validates and compiles every app (regexps, version constraints,
//     attribute names) and fails before placing anything if one is invalid;
//  2. stops every instance of apps that are no longer wanted;
//  3. plans the wanted apps one by one, each after the apps it keeps away
//     from or wants to be near (planningOrder), on a working state that
//     holds the outcome of the apps planned so far.
//
// Planning one app:
//
//   - Feasibility (feasible.go): a node must be eligible, not draining,
//     satisfy every constraint and not run an active instance of an app in
//     AwayFrom. The first check a node fails is counted as its reason
//     (Filtered), so operators read "constraint node.labels.disk = ssd not
//     met on 3 nodes".
//   - Keep: instances on feasible nodes stay (minimal churn), the active
//     one always; if there are more than Count, the best ranked stay.
//     Instances on other nodes (draining, ineligible, constraint no longer
//     met, an away_from app now active there) must leave.
//   - Rank (rank.go): missing instances go to the best ranked feasible
//     nodes; apps on every feasible node need no ranking.
//   - Diff (plan.go): leaving instances pair with new nodes as Moves, the
//     rest become Places and Stops.
//
// Counts by mode: spread runs one instance on every feasible node; singleton
// and ring do too when Count is 0, else Count of them, never two on a node;
// replicas run Count instances, on distinct nodes while there are enough.
// An app that cannot get what it wants is placed as far as possible and
// reported (AppPlan.Explain: "placed 2 of 3: ...").
//
// AwayFrom is enforced against the active state known when the app is
// planned: instances the plan keeps or places for non-singleton apps, and a
// singleton's kept active instance. A singleton's standbys never block, so
// when the election later promotes a standby on a node that runs an app
// kept away from it, the next plan moves that app.
package placement
