package scheduler

import (
	"slices"
	"strings"

	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/ozanturksever/go-cluster/placement"
)

// Translate converts a job spec to the placement engine's App. It is a pure
// mapping and validates nothing: a value placement cannot use (an unknown
// mode or operator) is passed through unchanged so that placement rejects
// it with its own message, which Reconcile reports as the job's failure.
//
// Decisions worth knowing:
//
//   - Singleton and ring get Count 0: every feasible node is a candidate (a
//     singleton's standbys compete for its lease; a ring's members share its
//     partitions), as the library does.
//   - Replicas always get a distinct_hosts constraint. An Alloc is keyed by
//     (job, node), so two instances of one job on one node cannot even be
//     written down; jobspec documents replicas as running "on distinct
//     nodes" anyway.
//   - The attribute "meta.KEY" becomes "node.labels.KEY". Nodes carry one
//     key/value map, their labels, which is what Nomad calls node meta;
//     dropping the rule instead would silently widen a hard constraint.
//     Should nodes ever get a separate meta map, placement needs an
//     attribute kind for it and this mapping changes.
//
// A nil spec gives the zero App.
func Translate(spec *jobspec.App) placement.App {
	if spec == nil {
		return placement.App{}
	}
	mode, count := translateMode(spec.Mode, spec.Count)
	app := placement.App{
		Name:     spec.Name,
		Mode:     mode,
		Count:    count,
		AwayFrom: slices.Clone(spec.AwayFrom),
		Near:     slices.Clone(spec.Near),
	}
	distinct := false
	for _, c := range spec.Constraints {
		distinct = distinct || c.Operator == jobspec.OpDistinctHosts
		app.Constraints = append(app.Constraints, placement.Constraint{
			Attribute: translateAttribute(c.Attribute),
			Operator:  translateOperator(c.Operator),
			Value:     c.Value,
		})
	}
	if mode == placement.ModeReplicas && !distinct {
		app.Constraints = append(app.Constraints, placement.Constraint{Operator: placement.OpDistinctHosts})
	}
	for _, a := range spec.Affinities {
		app.Affinities = append(app.Affinities, placement.Affinity{
			Attribute: translateAttribute(a.Attribute),
			Operator:  translateOperator(a.Operator),
			Value:     a.Value,
			Weight:    a.Weight,
		})
	}
	for _, s := range spec.Spreads {
		app.Spreads = append(app.Spreads, placement.Spread{
			Attribute: translateAttribute(s.Attribute),
			Weight:    s.Weight,
		})
	}
	return app
}

// translateMode maps the instance model and decides the count placement
// works with (see Translate). An empty mode is jobspec's default, singleton.
func translateMode(m jobspec.Mode, count int) (placement.Mode, int) {
	switch m {
	case jobspec.ModeSingleton, "":
		return placement.ModeSingleton, 0
	case jobspec.ModeSpread:
		return placement.ModeSpread, 0
	case jobspec.ModeReplicas:
		return placement.ModeReplicas, count
	case jobspec.ModeRing:
		return placement.ModeRing, 0
	}
	return placement.Mode(m), count
}

// translateOperator maps operators by name rather than by converting the
// string, so that a renamed constant on either side fails a test here
// instead of silently matching nothing.
func translateOperator(op jobspec.Operator) placement.Operator {
	switch op {
	case jobspec.OpEqual:
		return placement.OpEqual
	case jobspec.OpNotEqual:
		return placement.OpNotEqual
	case jobspec.OpLess:
		return placement.OpLess
	case jobspec.OpLessOrEqual:
		return placement.OpLessEqual
	case jobspec.OpGreater:
		return placement.OpGreater
	case jobspec.OpGreaterOrEqual:
		return placement.OpGreaterEqual
	case jobspec.OpRegexp:
		return placement.OpRegexp
	case jobspec.OpVersion:
		return placement.OpVersion
	case jobspec.OpSetContains:
		return placement.OpSetContains
	case jobspec.OpIsSet:
		return placement.OpIsSet
	case jobspec.OpIsNotSet:
		return placement.OpIsNotSet
	case jobspec.OpDistinctHosts:
		return placement.OpDistinctHosts
	}
	return placement.Operator(op)
}

// Node attribute prefixes as jobspec and placement spell them.
const (
	jobspecMetaPrefix     = "meta."
	placementLabelsPrefix = "node.labels."
)

// translateAttribute maps "meta.KEY" to "node.labels.KEY" (see Translate);
// every other attribute is spelled the same on both sides.
func translateAttribute(attr string) string {
	if key, ok := strings.CutPrefix(attr, jobspecMetaPrefix); ok {
		return placementLabelsPrefix + key
	}
	return attr
}
