package jobspec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// evalLocals evaluates the locals blocks of one file. Locals may refer to
// each other in any order, so they are evaluated in rounds: each round
// evaluates every local whose references to other locals are resolved,
// until nothing is left or a round makes no progress, which means a cycle.
// ctx must already hold var; local is added to it as locals resolve.
func evalLocals(blocks []*hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	pending := map[string]*hcl.Attribute{}
	for _, block := range blocks {
		attrs, more := block.Body.JustAttributes()
		diags = append(diags, more...)
		for name, attr := range attrs {
			if first, dup := pending[name]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate local value",
					Detail:   fmt.Sprintf("The local %q is already defined at %s.", name, location(first.Range)),
					Subject:  attr.NameRange.Ptr(),
				})
				continue
			}
			pending[name] = attr
		}
	}

	resolved := make(map[string]cty.Value, len(pending))
	ctx.Variables["local"] = cty.EmptyObjectVal
	for len(pending) > 0 {
		var ready []string
		for name, attr := range pending {
			if dependsOnPending(attr.Expr, pending) {
				continue
			}
			ready = append(ready, name)
		}
		if len(ready) == 0 {
			return append(diags, cycleDiagnostics(pending)...)
		}
		// Sorted so diagnostics come out in the same order on every run.
		sort.Strings(ready)
		for _, name := range ready {
			val, more := pending[name].Expr.Value(ctx)
			diags = append(diags, more...)
			if more.HasErrors() {
				// Unknown, so locals and apps using it fail quietly instead
				// of repeating this error.
				val = cty.DynamicVal
			}
			resolved[name] = val
			delete(pending, name)
		}
		ctx.Variables["local"] = cty.ObjectVal(resolved)
	}
	return diags
}

// dependsOnPending reports whether expr refers to a local still waiting to
// be evaluated, itself included.
func dependsOnPending(expr hcl.Expression, pending map[string]*hcl.Attribute) bool {
	for _, traversal := range expr.Variables() {
		if traversal.RootName() != "local" || len(traversal) < 2 {
			continue
		}
		attr, ok := traversal[1].(hcl.TraverseAttr)
		if !ok {
			continue
		}
		if _, waiting := pending[attr.Name]; waiting {
			return true
		}
	}
	return false
}

// cycleDiagnostics reports each local left when no progress is possible:
// those in a cycle and those depending on one.
func cycleDiagnostics(pending map[string]*hcl.Attribute) hcl.Diagnostics {
	names := make([]string, 0, len(pending))
	for name := range pending {
		names = append(names, name)
	}
	sort.Strings(names)
	var diags hcl.Diagnostics
	for _, name := range names {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Circular reference between locals",
			Detail:   fmt.Sprintf("The local %q cannot be evaluated: it depends on itself, directly or through other locals. Unresolved: local.%s.", name, strings.Join(names, ", local.")),
			Subject:  pending[name].Expr.Range().Ptr(),
		})
	}
	return diags
}
