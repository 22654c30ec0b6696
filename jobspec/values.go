package jobspec

import (
	"fmt"
	"math/big"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// decoder evaluates attributes of one job file into Go values and collects
// every diagnostic on the way, so one run reports all problems at once.
//
// Its typed getters return ok=false when the attribute is absent or broken;
// in the latter case a diagnostic has been recorded. A value that is unknown
// stems from a variable or local that already failed, so it is skipped
// silently instead of being reported a second time. Null is an error rather
// than "use the default": a required setting must never vanish quietly
// because a variable was null.
type decoder struct {
	ctx   *hcl.EvalContext
	diags hcl.Diagnostics
}

// report records a diagnostic about an attribute's value.
func (d *decoder) report(severity hcl.DiagnosticSeverity, attr *hcl.Attribute, summary, detail string) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: severity,
		Summary:  summary,
		Detail:   detail,
		Subject:  attr.Expr.Range().Ptr(),
		Context:  attr.Range.Ptr(),
	})
}

func (d *decoder) errorf(attr *hcl.Attribute, summary, format string, args ...any) {
	d.report(hcl.DiagError, attr, summary, fmt.Sprintf(format, args...))
}

func (d *decoder) warnf(attr *hcl.Attribute, summary, format string, args ...any) {
	d.report(hcl.DiagWarning, attr, summary, fmt.Sprintf(format, args...))
}

// value evaluates attr and converts it to ty; want describes ty to a user.
func (d *decoder) value(attr *hcl.Attribute, ty cty.Type, want string) (cty.Value, bool) {
	if attr == nil {
		return cty.NilVal, false
	}
	val, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || !val.IsWhollyKnown() {
		return cty.NilVal, false
	}
	if val.IsNull() {
		d.errorf(attr, "Null value", "The attribute %q is null; remove it to use the default, or give %s.", attr.Name, want)
		return cty.NilVal, false
	}
	converted, err := convert.Convert(val, ty)
	if err == nil && containsNull(converted) {
		err = fmt.Errorf("elements must not be null")
	}
	if err != nil {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Incorrect attribute value type",
			Detail:      fmt.Sprintf("Inappropriate value for attribute %q: %s is required, got %s.", attr.Name, want, val.Type().FriendlyName()),
			Subject:     attr.Expr.Range().Ptr(),
			Context:     attr.Range.Ptr(),
			Expression:  attr.Expr,
			EvalContext: d.ctx,
		})
		return cty.NilVal, false
	}
	return converted, true
}

// containsNull reports null elements of a converted list or map, which the
// Go structs cannot represent.
func containsNull(val cty.Value) bool {
	if !val.CanIterateElements() {
		return false
	}
	for it := val.ElementIterator(); it.Next(); {
		if _, element := it.Element(); element.IsNull() {
			return true
		}
	}
	return false
}

func (d *decoder) string(attr *hcl.Attribute) (string, bool) {
	val, ok := d.value(attr, cty.String, "a string")
	if !ok {
		return "", false
	}
	return val.AsString(), true
}

// nonEmptyString is string for attributes where "" cannot mean anything.
func (d *decoder) nonEmptyString(attr *hcl.Attribute) (string, bool) {
	s, ok := d.string(attr)
	if ok && s == "" {
		d.errorf(attr, "Empty value", "The attribute %q must not be empty.", attr.Name)
		return "", false
	}
	return s, ok
}

// intInRange decodes a whole number within [lo, hi].
func (d *decoder) intInRange(attr *hcl.Attribute, lo, hi int) (int, bool) {
	val, ok := d.value(attr, cty.Number, "a number")
	if !ok {
		return 0, false
	}
	n, accuracy := val.AsBigFloat().Int64()
	if accuracy != big.Exact || n < int64(lo) || n > int64(hi) {
		d.errorf(attr, "Value out of range", "The attribute %q must be a whole number from %d to %d, got %s.", attr.Name, lo, hi, val.AsBigFloat().Text('g', -1))
		return 0, false
	}
	return int(n), true
}

func (d *decoder) strings(attr *hcl.Attribute) ([]string, bool) {
	val, ok := d.value(attr, cty.List(cty.String), "a list of strings")
	if !ok {
		return nil, false
	}
	out := make([]string, 0, val.LengthInt())
	for it := val.ElementIterator(); it.Next(); {
		_, element := it.Element()
		out = append(out, element.AsString())
	}
	return out, true
}

func (d *decoder) stringMap(attr *hcl.Attribute) (map[string]string, bool) {
	val, ok := d.value(attr, cty.Map(cty.String), "a map of strings")
	if !ok {
		return nil, false
	}
	out := make(map[string]string, val.LengthInt())
	for it := val.ElementIterator(); it.Next(); {
		key, element := it.Element()
		out[key.AsString()] = element.AsString()
	}
	return out, true
}

// duration decodes a Go duration string such as "30s" or "1h30m". Zero is
// accepted only where allowZero says it has a meaning (no delay, no wait).
func (d *decoder) duration(attr *hcl.Attribute, allowZero bool) (time.Duration, bool) {
	s, ok := d.string(attr)
	if !ok {
		return 0, false
	}
	parsed, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.errorf(attr, "Invalid duration", "%q is not a duration: write a number with a unit, such as \"30s\", \"5m\" or \"1h30m\".", s)
		return 0, false
	case parsed < 0, parsed == 0 && !allowZero:
		d.errorf(attr, "Invalid duration", "The attribute %q must be a positive duration, got %q.", attr.Name, s)
		return 0, false
	}
	return parsed, true
}

// oneOf decodes a string that must be one of the allowed values, suggesting
// the closest one for a typo.
func (d *decoder) oneOf(attr *hcl.Attribute, what string, allowed []string) (string, bool) {
	s, ok := d.string(attr)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	d.errorf(attr, "Unknown "+what, "%q is not a valid %s; expected %s.%s", s, what, quotedList(allowed), didYouMean(s, allowed))
	return "", false
}

// quotedList renders names as "a", "b" or "c" for diagnostics.
func quotedList(names []string) string {
	var out string
	for i, name := range names {
		switch {
		case i == 0:
		case i == len(names)-1:
			out += " or "
		default:
			out += ", "
		}
		out += fmt.Sprintf("%q", name)
	}
	return out
}

// duplicateBlock reports a second block where only one is allowed, naming
// where the first one is.
func duplicateBlock(first, second *hcl.Block) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Duplicate %s block", second.Type),
		Detail:   fmt.Sprintf("Only one %s block is allowed here; the first one is at %s.", second.Type, location(first.DefRange)),
		Subject:  second.DefRange.Ptr(),
	}
}

// location renders the start of r as file:line:col, the form editors and
// terminals turn into links.
func location(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
