package placement

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// attribute reads one property of a node.
type attribute struct {
	name  string // as written, for explanations
	kind  attributeKind
	label string // for attributeLabel
}

type attributeKind uint8

const (
	attributeID attributeKind = iota
	attributeAddress
	attributeLabel
)

const labelPrefix = "node.labels."

func parseAttribute(name string) (attribute, error) {
	switch {
	case name == "node.id":
		return attribute{name: name, kind: attributeID}, nil
	case name == "node.address":
		return attribute{name: name, kind: attributeAddress}, nil
	case strings.HasPrefix(name, labelPrefix) && len(name) > len(labelPrefix):
		return attribute{name: name, kind: attributeLabel, label: name[len(labelPrefix):]}, nil
	}
	return attribute{}, fmt.Errorf("unknown attribute %q: want node.id, node.address or node.labels.<name>", name)
}

// lookup returns the node's value of the attribute and whether it has one.
func (a attribute) lookup(n *Node) (string, bool) {
	switch a.kind {
	case attributeID:
		return n.ID, true
	case attributeAddress:
		return n.Address, n.Address != ""
	}
	v, ok := n.Labels[a.label]
	return v, ok
}

// condition is a constraint or affinity compiled once per app, so that
// checking a node neither parses nor compiles anything.
type condition struct {
	attr     attribute
	op       Operator
	value    string
	number   float64 // value as a number, when numeric
	numeric  bool
	re       *regexp.Regexp
	versions versionConstraint
	// versionHolds remembers the outcome per attribute value: nodes share
	// a handful of versions, and parsing one allocates.
	versionHolds map[string]bool
	set          []string // items of a set_contains value
}

func compileCondition(attr string, op Operator, value string) (condition, error) {
	a, err := parseAttribute(attr)
	if err != nil {
		return condition{}, err
	}
	c := condition{attr: a, op: op, value: value}
	switch op {
	case OpEqual, OpNotEqual, OpIsSet, OpIsNotSet:
	case OpLess, OpLessEqual, OpGreater, OpGreaterEqual:
		c.number, c.numeric = parseNumber(value)
	case OpRegexp:
		if c.re, err = regexp.Compile(value); err != nil {
			return condition{}, fmt.Errorf("regexp %q: %w", value, err)
		}
	case OpVersion:
		if c.versions, err = parseVersionConstraint(value); err != nil {
			return condition{}, fmt.Errorf("version constraint %q: %w", value, err)
		}
		c.versionHolds = make(map[string]bool)
	case OpSetContains:
		for item := range strings.SplitSeq(value, ",") {
			if item = strings.TrimSpace(item); item != "" {
				c.set = append(c.set, item)
			}
		}
		if len(c.set) == 0 {
			return condition{}, errors.New("set_contains needs at least one item")
		}
	default:
		return condition{}, fmt.Errorf("unknown operator %q", op)
	}
	return c, nil
}

// holds reports whether the node satisfies the condition.
func (c *condition) holds(n *Node) bool {
	v, ok := c.attr.lookup(n)
	switch c.op {
	case OpIsSet:
		return ok
	case OpIsNotSet:
		return !ok
	case OpNotEqual:
		return !ok || v != c.value
	}
	if !ok {
		return false
	}
	switch c.op {
	case OpEqual:
		return v == c.value
	case OpLess:
		return c.compare(v) < 0
	case OpLessEqual:
		return c.compare(v) <= 0
	case OpGreater:
		return c.compare(v) > 0
	case OpGreaterEqual:
		return c.compare(v) >= 0
	case OpRegexp:
		return c.re.MatchString(v)
	case OpVersion:
		holds, seen := c.versionHolds[v]
		if !seen {
			ver, err := parseVersion(v)
			holds = err == nil && c.versions.allows(ver)
			c.versionHolds[v] = holds
		}
		return holds
	case OpSetContains:
		return containsAll(v, c.set)
	}
	return false
}

// compare orders a node's value against the condition's: as numbers when
// both are numbers, otherwise as strings.
func (c *condition) compare(v string) int {
	if c.numeric {
		if x, ok := parseNumber(v); ok {
			switch {
			case x < c.number:
				return -1
			case x > c.number:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(v, c.value)
}

func parseNumber(s string) (float64, bool) {
	x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return x, err == nil
}

// containsAll reports whether the comma-separated list has every item.
func containsAll(list string, items []string) bool {
	for _, want := range items {
		found := false
		for have := range strings.SplitSeq(list, ",") {
			if strings.TrimSpace(have) == want {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// String reads like "node.labels.disk = ssd" or "node.labels.gpu is_set".
func (c *condition) String() string {
	if c.op == OpIsSet || c.op == OpIsNotSet {
		return c.attr.name + " " + string(c.op)
	}
	return c.attr.name + " " + string(c.op) + " " + c.value
}
