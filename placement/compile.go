package placement

import (
	"errors"
	"fmt"
	"math"
)

// compiledApp is an App validated and compiled once, before anything is
// placed: regexps, version constraints and attribute names are parsed here
// and never per node.
type compiledApp struct {
	name  string
	mode  Mode
	count int
	row   int // in the working state
	// everyNode apps run one instance on every feasible node.
	everyNode bool
	// distinct apps never run two instances on one node.
	distinct      bool
	checks        []check
	affinities    []weightedCondition
	affinityTotal float64 // Σ |weights|
	near          []int   // rows of the apps to be near
	spreads       []compiledSpread
}

type compiledSpread struct {
	attr   attribute
	weight float64 // part of the app's spread weight
}

func compileApp(a *App, cl *cluster) (compiledApp, error) {
	c := compiledApp{name: a.Name, mode: a.Mode, count: a.Count, row: cl.rows[a.Name]}
	if a.Count < 0 {
		return compiledApp{}, fmt.Errorf("count %d is negative", a.Count)
	}
	switch a.Mode {
	case ModeSingleton, ModeRing:
		c.everyNode, c.distinct = a.Count == 0, true
	case ModeSpread:
		if a.Count != 0 {
			return compiledApp{}, fmt.Errorf("spread runs on every feasible node: count must be 0, not %d", a.Count)
		}
		c.everyNode, c.distinct = true, true
	case ModeReplicas:
	default:
		return compiledApp{}, fmt.Errorf("unknown mode %q", a.Mode)
	}
	c.checks = []check{eligibleCheck{}, drainingCheck{}}
	for i, con := range a.Constraints {
		if con.Operator == OpDistinctHosts {
			on, err := distinctHostsValue(con)
			if err != nil {
				return compiledApp{}, fmt.Errorf("constraint %d: %w", i, err)
			}
			c.distinct = c.distinct || on
			continue
		}
		cond, err := compileCondition(con.Attribute, con.Operator, con.Value)
		if err != nil {
			return compiledApp{}, fmt.Errorf("constraint %d: %w", i, err)
		}
		c.checks = append(c.checks, &constraintCheck{cond: cond})
	}
	for _, name := range a.AwayFrom {
		if err := checkAppRef(a.Name, name); err != nil {
			return compiledApp{}, fmt.Errorf("away_from: %w", err)
		}
		// An app that neither is wanted nor runs anywhere blocks nothing.
		if row, ok := cl.rows[name]; ok {
			c.checks = append(c.checks, awayFromCheck{app: name, active: cl.actives(row)})
		}
	}
	for _, name := range a.Near {
		if err := checkAppRef(a.Name, name); err != nil {
			return compiledApp{}, fmt.Errorf("near: %w", err)
		}
		if row, ok := cl.rows[name]; ok {
			c.near = append(c.near, row)
		}
	}
	for i, af := range a.Affinities {
		if af.Operator == OpDistinctHosts {
			return compiledApp{}, fmt.Errorf("affinity %d: distinct_hosts is a constraint only", i)
		}
		if af.Weight == 0 || af.Weight < -100 || af.Weight > 100 {
			return compiledApp{}, fmt.Errorf("affinity %d: weight %d outside -100..100 or 0", i, af.Weight)
		}
		cond, err := compileCondition(af.Attribute, af.Operator, af.Value)
		if err != nil {
			return compiledApp{}, fmt.Errorf("affinity %d: %w", i, err)
		}
		c.affinities = append(c.affinities, weightedCondition{cond: cond, weight: float64(af.Weight)})
		c.affinityTotal += math.Abs(float64(af.Weight))
	}
	var spreadTotal float64
	for i, s := range a.Spreads {
		if s.Weight < 1 || s.Weight > 100 {
			return compiledApp{}, fmt.Errorf("spread %d: weight %d outside 1..100", i, s.Weight)
		}
		attr, err := parseAttribute(s.Attribute)
		if err != nil {
			return compiledApp{}, fmt.Errorf("spread %d: %w", i, err)
		}
		c.spreads = append(c.spreads, compiledSpread{attr: attr, weight: float64(s.Weight)})
		spreadTotal += float64(s.Weight)
	}
	for i := range c.spreads {
		c.spreads[i].weight /= spreadTotal
	}
	return c, nil
}

func distinctHostsValue(c Constraint) (bool, error) {
	if c.Attribute != "" {
		return false, fmt.Errorf("distinct_hosts takes no attribute, got %q", c.Attribute)
	}
	switch c.Value {
	case "", "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("distinct_hosts value %q: want true or false", c.Value)
}

func checkAppRef(self, name string) error {
	switch name {
	case "":
		return errors.New("empty app name")
	case self:
		return fmt.Errorf("app %q refers to itself", name)
	}
	return nil
}
