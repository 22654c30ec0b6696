package placement

// Input is everything one placement depends on: the apps the cluster should
// run and the nodes with what runs on them now. Node.Instances is the current
// assignment; there is no second list of it that could disagree.
type Input struct {
	Apps  []App
	Nodes []Node
}

// Mode is how the instances of an app relate to each other.
type Mode string

const (
	// ModeSingleton runs one active instance and keeps candidates on other
	// nodes for the election to promote. Count is the number of candidate
	// nodes; 0 makes every feasible node a candidate, as the library does
	// when all platforms running the app compete for its lease. Placement
	// never picks the active candidate: the election does.
	ModeSingleton Mode = "singleton"
	// ModeSpread runs one active instance on every feasible node. Count must
	// be 0.
	ModeSpread Mode = "spread"
	// ModeReplicas runs Count active instances on distinct nodes while there
	// are enough of them, and doubles up only when there are not and the app
	// has no distinct_hosts constraint.
	ModeReplicas Mode = "replicas"
	// ModeRing makes nodes members of a partition ring: every feasible node,
	// or Count of them when Count > 0. Which member owns which partition is
	// decided by the ring assignment, not here.
	ModeRing Mode = "ring"
)

// App is one app the cluster should run.
type App struct {
	Name  string
	Mode  Mode
	Count int
	// Constraints are hard: a node that fails one never gets an instance.
	Constraints []Constraint
	// Affinities are soft: they rank feasible nodes.
	Affinities []Affinity
	// Spreads are soft: they rank nodes so that instances spread evenly
	// over the values of a node attribute.
	Spreads []Spread
	// AwayFrom names apps this app never runs beside: a node where one of
	// them is active is infeasible. Their standby candidates do not count,
	// so a worker may share a node with a database standby but not with
	// the database leader.
	AwayFrom []string
	// Near names apps this app prefers to run beside (soft).
	Near []string
}

// Operator is how a constraint or affinity compares a node attribute with
// its value.
type Operator string

const (
	OpEqual        Operator = "="
	OpNotEqual     Operator = "!="
	OpLess         Operator = "<"
	OpLessEqual    Operator = "<="
	OpGreater      Operator = ">"
	OpGreaterEqual Operator = ">="
	// OpRegexp matches the attribute against the value as a Go regexp.
	OpRegexp Operator = "regexp"
	// OpVersion reads the attribute as a version and the value as a
	// constraint such as ">= 1.2, < 2" or "~> 1.4".
	OpVersion Operator = "version"
	// OpSetContains reads both sides as comma-separated lists and holds
	// when the attribute's list contains every item of the value's.
	OpSetContains Operator = "set_contains"
	OpIsSet       Operator = "is_set"
	OpIsNotSet    Operator = "is_not_set"
	// OpDistinctHosts (constraints only, no attribute) forbids two
	// instances of a replicas app on one node. Value "" or "true" turns it
	// on, "false" off. Other modes never double up anyway.
	OpDistinctHosts Operator = "distinct_hosts"
)

// Constraint restricts an app to the nodes whose Attribute satisfies
// Operator and Value. Attributes are node.id, node.address and
// node.labels.<name>. A missing attribute satisfies only != and is_not_set.
type Constraint struct {
	Attribute string
	Operator  Operator
	Value     string
}

// Affinity adds Weight (-100..100, not 0) to the nodes that satisfy it;
// negative weights push instances away.
type Affinity struct {
	Attribute string
	Operator  Operator
	Value     string
	Weight    int
}

// Spread asks for instances to be spread evenly over the values Attribute
// takes on the app's feasible nodes, e.g. node.labels.zone. Weight (1..100)
// sets its importance against the app's other spreads.
type Spread struct {
	Attribute string
	Weight    int
}

// Node is a cluster member as the scheduler sees it.
type Node struct {
	ID      string
	Address string
	Labels  map[string]string
	// Eligible is false for a node an operator marked ineligible (and for
	// a zero Node): it gets nothing new and loses what it runs.
	Eligible bool
	// Draining nodes get nothing new and lose what they run.
	Draining bool
	// Instances is what runs on the node now.
	Instances []Instance
}

// Instance is one instance of an app on a node.
type Instance struct {
	App string
	// Active is true for a singleton's elected instance and for every
	// running instance of the other modes.
	Active bool
}
