//go:build race

package agenttest

// raceEnabled builds the agents under test with the race detector when the
// tests themselves run with it, so a race inside an agent process fails
// the test too.
const raceEnabled = true
