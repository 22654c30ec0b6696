package jobspec

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// This file decodes the placement rules of an app: constraints, affinities
// and spreads, and the node attributes they refer to. Everything that can be
// checked without knowing the nodes is checked here, so a bad rule fails at
// validate time instead of silently matching no node.

var constraintOperators = []string{
	string(OpEqual), string(OpNotEqual), string(OpLess), string(OpLessOrEqual),
	string(OpGreater), string(OpGreaterOrEqual), string(OpRegexp), string(OpVersion),
	string(OpSetContains), string(OpIsSet), string(OpIsNotSet), string(OpDistinctHosts),
}

// affinityOperators leave out distinct_hosts: a preference cannot be
// "somewhat distinct".
var affinityOperators = constraintOperators[:len(constraintOperators)-1]

// Node attribute forms a rule may name. The scheduler resolves them against
// each node's presence record.
const (
	attrNodeID      = "node.id"
	attrNodeAddress = "node.address"
	attrLabelPrefix = "node.labels."
	attrMetaPrefix  = "meta."
)

// The decoders below record problems as diagnostics and return what they
// could decode: when any error was found, Parse returns no apps at all, so a
// partly decoded rule never reaches a caller.

func (d *decoder) decodeConstraint(b *hcl.Block) Constraint {
	content, diags := b.Body.Content(constraintSchema)
	d.diags = append(d.diags, diags...)
	c := Constraint{Operator: OpEqual}
	if attr := content.Attributes["operator"]; attr != nil {
		op, ok := d.oneOf(attr, "operator", constraintOperators)
		if !ok {
			// Which attribute and value are needed depends on the operator.
			return c
		}
		c.Operator = Operator(op)
	}
	attribute := content.Attributes["attribute"]
	if c.Operator == OpDistinctHosts {
		if attribute != nil {
			d.errorf(attribute, "Attribute not used", "The distinct_hosts operator compares no attribute: it only keeps instances of this app on different nodes. Remove attribute.")
		}
		if value := content.Attributes["value"]; value != nil {
			d.errorf(value, "Value not used", "The distinct_hosts operator takes no value. Remove value.")
		}
		return c
	}
	c.Attribute = d.nodeAttribute(attribute, b)
	c.Value = d.ruleValue(content.Attributes["value"], c.Operator, b)
	return c
}

func (d *decoder) decodeAffinity(b *hcl.Block) Affinity {
	content, diags := b.Body.Content(affinitySchema)
	d.diags = append(d.diags, diags...)
	a := Affinity{Operator: OpEqual, Weight: DefaultAffinityWeight}
	if attr := content.Attributes["operator"]; attr != nil {
		op, ok := d.oneOf(attr, "affinity operator", affinityOperators)
		if !ok {
			return a
		}
		a.Operator = Operator(op)
	}
	if attr := content.Attributes["weight"]; attr != nil {
		if weight, ok := d.intInRange(attr, -100, 100); ok {
			a.Weight = weight
			if weight == 0 {
				d.errorf(attr, "Weight of zero", "An affinity with weight 0 has no effect: use 1 to 100 to prefer matching nodes, -100 to -1 to avoid them.")
			}
		}
	}
	a.Attribute = d.nodeAttribute(content.Attributes["attribute"], b)
	a.Value = d.ruleValue(content.Attributes["value"], a.Operator, b)
	return a
}

func (d *decoder) decodeSpread(b *hcl.Block) Spread {
	content, diags := b.Body.Content(spreadSchema)
	d.diags = append(d.diags, diags...)
	s := Spread{Weight: DefaultSpreadWeight}
	if weight, ok := d.intInRange(content.Attributes["weight"], 1, 100); ok {
		s.Weight = weight
	}
	s.Attribute = d.nodeAttribute(content.Attributes["attribute"], b)
	return s
}

// nodeAttribute decodes the attribute a rule looks at. A missing one was
// already reported by the schema when it is required; for constraints it is
// optional only with distinct_hosts, so it is reported here.
func (d *decoder) nodeAttribute(attr *hcl.Attribute, b *hcl.Block) string {
	if attr == nil {
		if b.Type == "constraint" {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing required argument",
				Detail:   "The argument \"attribute\" is required, except with operator = \"distinct_hosts\".",
				Subject:  b.DefRange.Ptr(),
			})
		}
		return ""
	}
	name, ok := d.nonEmptyString(attr)
	if !ok {
		return ""
	}
	if validNodeAttribute(name) {
		return name
	}
	d.errorf(attr, "Unknown node attribute", "%q is not a node attribute; use %q, %q, \"node.labels.KEY\" or \"meta.KEY\".%s",
		name, attrNodeID, attrNodeAddress, didYouMean(name, nodeAttributeCandidates(name)))
	return ""
}

func validNodeAttribute(name string) bool {
	switch {
	case name == attrNodeID, name == attrNodeAddress:
		return true
	case strings.HasPrefix(name, attrLabelPrefix):
		return validAttributeKey(name[len(attrLabelPrefix):])
	case strings.HasPrefix(name, attrMetaPrefix):
		return validAttributeKey(name[len(attrMetaPrefix):])
	}
	return false
}

// validAttributeKey accepts label keys such as "zone" or
// "topology.kubernetes.io/zone"; only emptiness and whitespace are refused.
func validAttributeKey(key string) bool {
	return key != "" && !strings.ContainsAny(key, " \t\n")
}

// nodeAttributeCandidates are the valid attributes closest in shape to a
// misspelled one: the fixed names, and the label and meta forms of the same
// key, so "node.label.zone" can be answered with "node.labels.zone".
func nodeAttributeCandidates(name string) []string {
	candidates := []string{attrNodeID, attrNodeAddress}
	parts := strings.Split(name, ".")
	if len(parts) >= 3 {
		candidates = append(candidates, attrLabelPrefix+strings.Join(parts[2:], "."))
	}
	if len(parts) >= 2 {
		candidates = append(candidates, attrMetaPrefix+strings.Join(parts[1:], "."))
	}
	return candidates
}

// takesValue reports whether rules with this operator compare against a
// value; "" is then a value like any other.
func (op Operator) takesValue() bool {
	return op != OpIsSet && op != OpIsNotSet && op != OpDistinctHosts
}

// ruleValue decodes and checks the value of a constraint or affinity for
// its operator.
func (d *decoder) ruleValue(attr *hcl.Attribute, op Operator, b *hcl.Block) string {
	if !op.takesValue() {
		if attr != nil {
			d.errorf(attr, "Value not used", "The %s operator only checks whether the attribute exists. Remove value.", op)
		}
		return ""
	}
	if attr == nil {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing required argument",
			Detail:   fmt.Sprintf("The argument \"value\" is required with operator %q.", op),
			Subject:  b.DefRange.Ptr(),
		})
		return ""
	}
	value, ok := d.string(attr)
	if !ok {
		return ""
	}
	switch op {
	case OpRegexp:
		if _, err := regexp.Compile(value); err != nil {
			d.errorf(attr, "Invalid regular expression", "%q is not a valid regular expression (RE2 syntax): %s.", value, err)
			return ""
		}
	case OpVersion:
		if err := checkVersionConstraint(value); err != nil {
			d.errorf(attr, "Invalid version constraint", "%q is not a version constraint such as \">= 1.2, < 2.0\": %s.", value, err)
			return ""
		}
	case OpSetContains:
		for item := range strings.SplitSeq(value, ",") {
			if strings.TrimSpace(item) == "" {
				d.errorf(attr, "Invalid set", "The set_contains value %q has an empty item; write items separated by commas, such as \"ssd,gpu\".", value)
				return ""
			}
		}
	}
	return value
}

var (
	versionOperators = []string{">=", "<=", "!=", "~>", "=", ">", "<"}
	versionPattern   = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
)

// checkVersionConstraint accepts comma-separated clauses, each an optional
// operator followed by a semantic version, as in ">= 1.2, < 2.0" or "~> 1.4".
func checkVersionConstraint(s string) error {
	for clause := range strings.SplitSeq(s, ",") {
		clause = strings.TrimSpace(clause)
		for _, op := range versionOperators {
			if rest, found := strings.CutPrefix(clause, op); found {
				clause = strings.TrimSpace(rest)
				break
			}
		}
		if !versionPattern.MatchString(clause) {
			if clause == "" {
				return fmt.Errorf("a clause has no version")
			}
			return fmt.Errorf("%q is not a version", clause)
		}
	}
	return nil
}
