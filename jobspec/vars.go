package jobspec

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

// EnvPrefix starts the names of environment variables that set job
// variables: GCL_VAR_region=eu sets var.region.
const EnvPrefix = "GCL_VAR_"

// A variable's value is chosen by this precedence, lowest first; a later
// source overrides an earlier one:
//
//  1. the default in the variable block,
//  2. the environment, GCL_VAR_<name>,
//  3. variable files, in the order given (a later file wins),
//  4. -var values.
//
// This is the order of Terraform and Nomad, so it surprises nobody coming
// from there, and it ranks the more explicit and the more specific to one
// invocation higher: the ambient environment loses to files named on the
// command line, which lose to a value typed on it.

// variable is one declared `variable "NAME"` block of a job file.
type variable struct {
	name string
	// typ is the declared type constraint; cty.DynamicPseudoType (any
	// type) when the block has no type.
	typ cty.Type
	// hasDefault is false for a required variable.
	hasDefault   bool
	defaultValue cty.Value
	defaultRange hcl.Range
	validations  []validationRule
	declRange    hcl.Range
}

type validationRule struct {
	condition    hcl.Expression
	errorMessage hcl.Expression
}

// inputs are the variable values given from outside the job files.
type inputs struct {
	cli       map[string]string
	files     map[string]*hcl.Attribute
	lookupEnv func(string) (string, bool)
}

// decodeVariables decodes the variable blocks of one file.
func decodeVariables(blocks []*hcl.Block) ([]*variable, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	seen := map[string]*hcl.Block{}
	var vars []*variable
	for _, block := range blocks {
		name := block.Labels[0]
		if !hclsyntax.ValidIdentifier(name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid variable name",
				Detail:   fmt.Sprintf("%q cannot be a variable name: use letters, digits, '_' and '-', starting with a letter.", name),
				Subject:  block.LabelRanges[0].Ptr(),
			})
			continue
		}
		if first, dup := seen[name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate variable",
				Detail:   fmt.Sprintf("The variable %q is already declared at %s.", name, location(first.DefRange)),
				Subject:  block.DefRange.Ptr(),
			})
			continue
		}
		seen[name] = block
		v, more := decodeVariable(block)
		diags = append(diags, more...)
		vars = append(vars, v)
	}
	return vars, diags
}

func decodeVariable(block *hcl.Block) (*variable, hcl.Diagnostics) {
	content, diags := block.Body.Content(variableSchema)
	v := &variable{name: block.Labels[0], typ: cty.DynamicPseudoType, declRange: block.DefRange}
	if attr := content.Attributes["type"]; attr != nil {
		typ, more := typeexpr.TypeConstraint(attr.Expr)
		diags = append(diags, more...)
		if !more.HasErrors() {
			v.typ = typ
		}
	}
	if attr := content.Attributes["description"]; attr != nil {
		// The description is documentation only; it must still be text.
		d := &decoder{}
		d.string(attr)
		diags = append(diags, d.diags...)
	}
	if attr := content.Attributes["default"]; attr != nil {
		// Until the default proves valid it is unknown: the variable is then
		// not also reported as missing, and expressions using it stay quiet.
		v.hasDefault, v.defaultValue, v.defaultRange = true, cty.DynamicVal, attr.Expr.Range()
		// Defaults are literals: they cannot depend on other variables.
		val, more := attr.Expr.Value(nil)
		diags = append(diags, more...)
		if !more.HasErrors() {
			if converted, err := convert.Convert(val, v.typ); err != nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid default value for variable",
					Detail:   fmt.Sprintf("The default of variable %q does not fit its type %s: %s.", v.name, typeexpr.TypeString(v.typ), err),
					Subject:  attr.Expr.Range().Ptr(),
				})
			} else {
				v.defaultValue = converted
			}
		}
	}
	for _, vb := range content.Blocks {
		vc, more := vb.Body.Content(validationSchema)
		diags = append(diags, more...)
		cond, msg := vc.Attributes["condition"], vc.Attributes["error_message"]
		if cond == nil || msg == nil {
			continue
		}
		if more := checkSelfReference(v.name, cond.Expr); more.HasErrors() {
			diags = append(diags, more...)
			continue
		}
		v.validations = append(v.validations, validationRule{condition: cond.Expr, errorMessage: msg.Expr})
	}
	return v, diags
}

// checkSelfReference makes sure a validation condition depends on nothing
// but the variable it validates, so it can run before any other value is
// known.
func checkSelfReference(name string, expr hcl.Expression) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, traversal := range expr.Variables() {
		if traversal.RootName() == "var" && len(traversal) > 1 {
			if attr, ok := traversal[1].(hcl.TraverseAttr); ok && attr.Name == name {
				continue
			}
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid reference in variable validation",
			Detail:   fmt.Sprintf("The condition for variable %q can only refer to the variable itself, as var.%s.", name, name),
			Subject:  traversal.SourceRange().Ptr(),
		})
	}
	return diags
}

// resolve picks the variable's value by precedence, converts it to the
// declared type and runs the validation rules. Only the winning source is
// read, so a broken value that is overridden does no harm. A failed variable
// resolves to an unknown value so that expressions using it are not
// reported again.
func (v *variable) resolve(in *inputs, funcs map[string]function.Function) (cty.Value, hcl.Diagnostics) {
	var (
		val     cty.Value
		diags   hcl.Diagnostics
		origin  string
		subject = v.declRange
	)
	envValue, fromEnv := "", false
	if in.lookupEnv != nil {
		envValue, fromEnv = in.lookupEnv(EnvPrefix + v.name)
	}
	// Highest precedence first; see the order documented at EnvPrefix.
	if raw, ok := in.cli[v.name]; ok {
		origin = "-var " + v.name
		val, diags = parseRawValue(raw, v.typ, origin, v.declRange)
	} else if attr, ok := in.files[v.name]; ok {
		origin, subject = "the variable file "+attr.Range.Filename, attr.Expr.Range()
		val, diags = v.fileValue(attr)
	} else if fromEnv {
		origin = "the environment variable " + EnvPrefix + v.name
		val, diags = parseRawValue(envValue, v.typ, origin, v.declRange)
	} else if v.hasDefault {
		origin, subject, val = "its default", v.defaultRange, v.defaultValue
	} else {
		return cty.DynamicVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No value for required variable",
			Detail:   fmt.Sprintf("The variable %q has no default, so it must be set with -var %s=VALUE, in a -var-file or with %s%s.", v.name, v.name, EnvPrefix, v.name),
			Subject:  v.declRange.Ptr(),
		}}
	}
	if diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	for _, rule := range v.validations {
		diags = append(diags, rule.check(v.name, val, origin, subject, funcs)...)
	}
	if diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	return val, diags
}

// fileValue converts a value from a variable file to the declared type.
func (v *variable) fileValue(attr *hcl.Attribute) (cty.Value, hcl.Diagnostics) {
	// Variable files hold literals, like defaults.
	val, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	converted, err := convert.Convert(val, v.typ)
	if err != nil {
		return cty.DynamicVal, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("The value for variable %q does not fit its type %s: %s.", v.name, typeexpr.TypeString(v.typ), err),
			Subject:  attr.Expr.Range().Ptr(),
		})
	}
	return converted, diags
}

// parseRawValue converts a string from -var or the environment. Strings
// stay strings for primitive and untyped variables (so -var name=db needs
// no quotes); collection and object types parse it as an HCL expression,
// such as ["a", "b"] or { size = 3 }.
func parseRawValue(raw string, typ cty.Type, source string, decl hcl.Range) (cty.Value, hcl.Diagnostics) {
	val := cty.StringVal(raw)
	if typ != cty.DynamicPseudoType && !typ.IsPrimitiveType() {
		expr, diags := hclsyntax.ParseExpression([]byte(raw), source, hcl.InitialPos)
		if diags.HasErrors() {
			return cty.DynamicVal, diags
		}
		if val, diags = expr.Value(nil); diags.HasErrors() {
			return cty.DynamicVal, diags
		}
	}
	converted, err := convert.Convert(val, typ)
	if err != nil {
		return cty.DynamicVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("The value from %s does not fit the variable's type %s: %s.", source, typeexpr.TypeString(typ), err),
			Subject:  decl.Ptr(),
		}}
	}
	return converted, nil
}

// check runs one validation rule against the chosen value; subject points
// at where the value was written, or at the declaration when it came from
// the command line or the environment.
func (rule validationRule) check(name string, val cty.Value, origin string, subject hcl.Range, funcs map[string]function.Function) hcl.Diagnostics {
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{name: val})},
		Functions: funcs,
	}
	result, diags := rule.condition.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	if result, err := convert.Convert(result, cty.Bool); err != nil || result.IsNull() {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid validation condition",
			Detail:   "The condition must be true or false.",
			Subject:  rule.condition.Range().Ptr(),
		})
	} else if !result.IsKnown() || result.True() {
		return diags
	}
	message, more := rule.errorMessage.Value(ctx)
	diags = append(diags, more...)
	text := "The value is not valid."
	if s, err := convert.Convert(message, cty.String); err == nil && s.IsKnown() && !s.IsNull() {
		text = strings.TrimSpace(s.AsString())
	}
	return append(diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid value for variable",
		Detail:   fmt.Sprintf("%s\n\nThe value of var.%s comes from %s and was checked by the rule at %s.", text, name, origin, location(rule.condition.Range())),
		Subject:  subject.Ptr(),
	})
}

// loadVarFiles reads variable files into one map of assignments, a later
// file overriding an earlier one. Their sources are added to files so that
// diagnostics can show them.
func loadVarFiles(paths []string, files map[string]*hcl.File) (map[string]*hcl.Attribute, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	assigned := map[string]*hcl.Attribute{}
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Failed to read variable file",
				Detail:   err.Error(),
			})
			continue
		}
		file, more := parseSyntax(path, src)
		diags = append(diags, more...)
		files[path] = file
		if more.HasErrors() {
			continue
		}
		attrs, more := file.Body.JustAttributes()
		diags = append(diags, more...)
		for name, attr := range attrs {
			assigned[name] = attr
		}
	}
	return assigned, diags
}
