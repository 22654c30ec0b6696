// Package jobspec turns gcl job files into plain Go structs.
//
// A job file holds one or more `app "NAME" { ... }` blocks in HCL native
// syntax (.hcl) or its JSON form (.hcl.json, .json), plus variable and locals
// blocks. Parsing evaluates variables, locals and the functions of the cty
// standard library, fills in defaults and checks every rule that needs no
// cluster, reporting all problems at once as HCL diagnostics with
// file:line:col positions. Parsing never runs external code, and it reads
// no files besides the ones named unless WithFileFunctions is given.
//
// Variables and locals are scoped to the file declaring them: several job
// files can be checked together (app names must be unique across them)
// without their variables colliding. Values given by WithVars and
// WithVarFiles apply to every file that declares the variable.
package jobspec

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Result is what Parse and ParseFiles produce.
type Result struct {
	// Apps are the decoded apps in the order of the files and, within a
	// file, of the blocks. Nil when the diagnostics contain an error.
	Apps []*App
	// Files are the sources read, job files and variable files, by file
	// name: WriteDiagnostics and JSONDiagnostics take snippets from them.
	Files map[string]*hcl.File
}

// source is one job file's name and text.
type source struct {
	filename string
	text     []byte
}

// ParseFiles reads, parses and validates job files as one set. The
// diagnostics hold every error and warning found; the Result is never nil,
// so its Files can render them.
func ParseFiles(paths []string, opts ...Option) (*Result, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	sources := make([]source, 0, len(paths))
	for _, path := range paths {
		text, err := os.ReadFile(path)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Failed to read job file",
				Detail:   err.Error(),
			})
			continue
		}
		sources = append(sources, source{filename: path, text: text})
	}
	result, more := parse(sources, opts)
	diags = append(diags, more...)
	if diags.HasErrors() {
		result.Apps = nil
	}
	return result, diags
}

// Parse parses and validates one job file held in memory. The file name
// selects the syntax (JSON when it ends in ".json") and appears in
// diagnostics.
func Parse(filename string, src []byte, opts ...Option) (*Result, hcl.Diagnostics) {
	return parse([]source{{filename: filename, text: src}}, opts)
}

func parse(sources []source, opts []Option) (*Result, hcl.Diagnostics) {
	cfg := &config{}
	for _, opt := range opts {
		opt(cfg)
	}
	result := &Result{Files: map[string]*hcl.File{}}
	fileValues, diags := loadVarFiles(cfg.varFiles, result.Files)
	in := &inputs{cli: cfg.vars, files: fileValues, lookupEnv: cfg.lookupEnv}
	funcs := functionsFor(cfg)

	declared := map[string]bool{}
	var apps []*decodedApp
	for _, src := range sources {
		file, more := parseSyntax(src.filename, src.text)
		result.Files[src.filename] = file
		diags = append(diags, more...)
		if more.HasErrors() {
			// Decoding a body the parser had to guess at would bury the
			// syntax error under follow-on errors.
			continue
		}
		fileApps, more := decodeFile(file, in, funcs, declared)
		diags = append(diags, more...)
		apps = append(apps, fileApps...)
	}
	diags = append(diags, validateAcrossApps(apps)...)
	diags = append(diags, undeclaredInputs(in, declared)...)
	sortDiagnostics(diags, cfg.varFiles, sources)
	if !diags.HasErrors() {
		result.Apps = make([]*App, len(apps))
		for i, decoded := range apps {
			result.Apps[i] = decoded.app
		}
	}
	return result, diags
}

// parseSyntax parses one file, as JSON when its name ends in ".json". The
// returned file is never nil and holds the original text.
func parseSyntax(filename string, src []byte) (*hcl.File, hcl.Diagnostics) {
	if strings.HasSuffix(filename, ".json") {
		return json.Parse(src, filename)
	}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	return file, acceptAppLabelTemplates(file, diags)
}

// decodeFile evaluates one parsed job file: its variables, then its locals,
// then its apps. The names of its variables are added to declared.
func decodeFile(file *hcl.File, in *inputs, funcs map[string]function.Function, declared map[string]bool) ([]*decodedApp, hcl.Diagnostics) {
	content, diags := file.Body.Content(fileSchema)
	var variableBlocks, localsBlocks, appBlocks []*hcl.Block
	for _, block := range content.Blocks {
		switch block.Type {
		case "variable":
			variableBlocks = append(variableBlocks, block)
		case "locals":
			localsBlocks = append(localsBlocks, block)
		case "app":
			appBlocks = append(appBlocks, block)
		}
	}

	vars, more := decodeVariables(variableBlocks)
	diags = append(diags, more...)
	values := make(map[string]cty.Value, len(vars))
	for _, v := range vars {
		declared[v.name] = true
		values[v.name], more = v.resolve(in, funcs)
		diags = append(diags, more...)
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(values)},
		Functions: funcs,
	}
	diags = append(diags, evalLocals(localsBlocks, ctx)...)

	d := &decoder{ctx: ctx}
	var apps []*decodedApp
	for _, block := range appBlocks {
		name, named := d.appName(block, file.Bytes)
		// The body is decoded even without a valid name, to report its
		// errors in the same run.
		decoded := d.decodeApp(block, name)
		d.diags = append(d.diags, validateApp(decoded)...)
		if named {
			apps = append(apps, decoded)
		}
	}
	return apps, append(diags, d.diags...)
}

// undeclaredInputs reports values given for variables that no file
// declares: an error for -var, where it is most likely a typo, and a
// warning for variable files, which are often shared by several jobs.
func undeclaredInputs(in *inputs, declared map[string]bool) hcl.Diagnostics {
	names := slices.Sorted(maps.Keys(declared))
	var diags hcl.Diagnostics
	for _, name := range slices.Sorted(maps.Keys(in.cli)) {
		if !declared[name] {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("A value was given with -var for %q, but no job file declares a variable of that name.%s", name, didYouMean(name, names)),
			})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(in.files)) {
		if !declared[name] {
			attr := in.files[name]
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("The variable file sets %q, but no job file declares a variable of that name.%s", name, didYouMean(name, names)),
				Subject:  attr.NameRange.Ptr(),
			})
		}
	}
	return diags
}

// sortDiagnostics orders diags as a reader goes through the input: those
// without a position first (unreadable files, -var problems), then by file
// (variable files, then job files, as given) and position in the file.
func sortDiagnostics(diags hcl.Diagnostics, varFiles []string, sources []source) {
	order := make(map[string]int, len(varFiles)+len(sources))
	for _, name := range varFiles {
		order[name] = len(order) + 1
	}
	for _, src := range sources {
		if _, seen := order[src.filename]; !seen {
			order[src.filename] = len(order) + 1
		}
	}
	key := func(diag *hcl.Diagnostic) (int, int) {
		if diag.Subject == nil {
			return 0, 0
		}
		return order[diag.Subject.Filename], diag.Subject.Start.Byte
	}
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		fileA, byteA := key(a)
		fileB, byteB := key(b)
		if fileA != fileB {
			return fileA - fileB
		}
		return byteA - byteB
	})
}
