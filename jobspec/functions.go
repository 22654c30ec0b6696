package jobspec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// pureFunctions are the functions every job file may call. They compute
// values from their arguments only: no clock, no file system, no processes,
// so parsing the same text with the same variables always gives the same
// job.
func pureFunctions() map[string]function.Function {
	return map[string]function.Function{
		"abs":             stdlib.AbsoluteFunc,
		"ceil":            stdlib.CeilFunc,
		"chomp":           stdlib.ChompFunc,
		"chunklist":       stdlib.ChunklistFunc,
		"coalesce":        stdlib.CoalesceFunc,
		"coalescelist":    stdlib.CoalesceListFunc,
		"compact":         stdlib.CompactFunc,
		"concat":          stdlib.ConcatFunc,
		"contains":        stdlib.ContainsFunc,
		"csvdecode":       stdlib.CSVDecodeFunc,
		"distinct":        stdlib.DistinctFunc,
		"element":         stdlib.ElementFunc,
		"flatten":         stdlib.FlattenFunc,
		"floor":           stdlib.FloorFunc,
		"format":          stdlib.FormatFunc,
		"formatlist":      stdlib.FormatListFunc,
		"indent":          stdlib.IndentFunc,
		"index":           stdlib.IndexFunc,
		"join":            stdlib.JoinFunc,
		"jsondecode":      stdlib.JSONDecodeFunc,
		"jsonencode":      stdlib.JSONEncodeFunc,
		"keys":            stdlib.KeysFunc,
		"length":          stdlib.LengthFunc,
		"log":             stdlib.LogFunc,
		"lookup":          stdlib.LookupFunc,
		"lower":           stdlib.LowerFunc,
		"max":             stdlib.MaxFunc,
		"merge":           stdlib.MergeFunc,
		"min":             stdlib.MinFunc,
		"parseint":        stdlib.ParseIntFunc,
		"pow":             stdlib.PowFunc,
		"range":           stdlib.RangeFunc,
		"regex":           stdlib.RegexFunc,
		"regexall":        stdlib.RegexAllFunc,
		"regex_replace":   stdlib.RegexReplaceFunc,
		"replace":         stdlib.ReplaceFunc,
		"reverse":         stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc,
		"setproduct":      stdlib.SetProductFunc,
		"setsubtract":     stdlib.SetSubtractFunc,
		"setunion":        stdlib.SetUnionFunc,
		"signum":          stdlib.SignumFunc,
		"slice":           stdlib.SliceFunc,
		"sort":            stdlib.SortFunc,
		"split":           stdlib.SplitFunc,
		"strrev":          stdlib.ReverseFunc,
		"substr":          stdlib.SubstrFunc,
		"title":           stdlib.TitleFunc,
		"tobool":          stdlib.MakeToFunc(cty.Bool),
		"tolist":          stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":           stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":        stdlib.MakeToFunc(cty.Number),
		"toset":           stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":        stdlib.MakeToFunc(cty.String),
		"trim":            stdlib.TrimFunc,
		"trimprefix":      stdlib.TrimPrefixFunc,
		"trimspace":       stdlib.TrimSpaceFunc,
		"trimsuffix":      stdlib.TrimSuffixFunc,
		"upper":           stdlib.UpperFunc,
		"values":          stdlib.ValuesFunc,
		"zipmap":          stdlib.ZipmapFunc,
	}
}

// errFileFunctionsDisabled is returned by the file functions when the caller
// did not enable them. Declaring the functions anyway (instead of leaving
// them unknown) lets the diagnostic say why they fail.
var errFileFunctionsDisabled = errors.New("file functions are disabled: this program parses job files without file system access (the gcl CLI enables them)")

// functionsFor returns the function table of one parse: the pure functions
// plus the file functions, working or refusing according to cfg.
func functionsFor(cfg *config) map[string]function.Function {
	funcs := pureFunctions()
	if !cfg.fileFunctions {
		funcs["file"] = disabledFunction(1)
		funcs["fileexists"] = disabledFunction(1)
		funcs["templatefile"] = disabledFunction(2)
		return funcs
	}
	resolve := func(path string) string {
		if filepath.IsAbs(path) {
			return path
		}
		return filepath.Join(cfg.fileBaseDir, path)
	}
	funcs["file"] = fileFunction(resolve)
	funcs["fileexists"] = fileExistsFunction(resolve)
	// templatefile gets the pure functions only: a template that could call
	// templatefile again could recurse without end.
	funcs["templatefile"] = templateFileFunction(resolve, pureFunctions())
	return funcs
}

// disabledFunction accepts any arguments, so the call reaches Impl and the
// user sees errFileFunctionsDisabled instead of an arity complaint.
func disabledFunction(params int) function.Function {
	spec := &function.Spec{
		Type: function.StaticReturnType(cty.String),
		Impl: func([]cty.Value, cty.Type) (cty.Value, error) {
			return cty.NilVal, errFileFunctionsDisabled
		},
	}
	for i := range params {
		spec.Params = append(spec.Params, function.Parameter{
			Name:             fmt.Sprintf("arg%d", i),
			Type:             cty.DynamicPseudoType,
			AllowNull:        true,
			AllowUnknown:     true,
			AllowDynamicType: true,
		})
	}
	return function.New(spec)
}

func fileFunction(resolve func(string) string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			content, err := os.ReadFile(resolve(args[0].AsString()))
			if err != nil {
				return cty.NilVal, fmt.Errorf("reading file: %w", err)
			}
			return cty.StringVal(string(content)), nil
		},
	})
}

func fileExistsFunction(resolve func(string) string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			info, err := os.Stat(resolve(args[0].AsString()))
			switch {
			case errors.Is(err, os.ErrNotExist):
				return cty.False, nil
			case err != nil:
				return cty.NilVal, fmt.Errorf("checking file: %w", err)
			}
			return cty.BoolVal(info.Mode().IsRegular()), nil
		},
	})
}

// templateFileFunction renders a file as an HCL template whose only
// variables are the keys of the object or map passed as vars.
func templateFileFunction(resolve func(string) string, funcs map[string]function.Function) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "vars", Type: cty.DynamicPseudoType},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			path := resolve(args[0].AsString())
			vars := args[1]
			if !vars.Type().IsObjectType() && !vars.Type().IsMapType() {
				return cty.NilVal, function.NewArgErrorf(1, "vars must be an object or a map")
			}
			content, err := os.ReadFile(path)
			if err != nil {
				return cty.NilVal, fmt.Errorf("reading template: %w", err)
			}
			tmpl, diags := hclsyntax.ParseTemplate(content, path, hcl.InitialPos)
			if diags.HasErrors() {
				return cty.NilVal, fmt.Errorf("parsing template: %w", diags)
			}
			ctx := &hcl.EvalContext{Variables: vars.AsValueMap(), Functions: funcs}
			rendered, diags := tmpl.Value(ctx)
			if diags.HasErrors() {
				return cty.NilVal, fmt.Errorf("rendering template: %w", diags)
			}
			rendered, err = convert.Convert(rendered, cty.String)
			if err != nil {
				return cty.NilVal, fmt.Errorf("rendering template: %w", err)
			}
			return rendered, nil
		},
	})
}
