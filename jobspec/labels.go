package jobspec

import (
	"bytes"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// App names may be templates, as in app "${var.env}-db" { ... }, so one job
// file can be deployed several times under different names (Nomad never
// allowed this: hashicorp/nomad#9522). Native HCL only accepts literal block
// labels: its parser reports "Invalid string literal" for each template
// sequence in a label, but recovers and keeps the block with its full label
// range. Those reports are dropped for top-level app blocks, and the label is
// evaluated later as a template from the original text, which reports any
// real mistake in it.

// acceptAppLabelTemplates removes the parser's complaints about template
// sequences in the labels of top-level app blocks, and puts the original
// label text into those blocks so that diagnostics name the app as written.
func acceptAppLabelTemplates(file *hcl.File, diags hcl.Diagnostics) hcl.Diagnostics {
	body, ok := file.Body.(*hclsyntax.Body)
	if !ok || !diags.HasErrors() {
		return diags
	}
	var labels []hcl.Range
	for _, block := range body.Blocks {
		if block.Type == "app" && len(block.LabelRanges) == 1 {
			labels = append(labels, block.LabelRanges[0])
			raw := labelSource(block.LabelRanges[0], file.Bytes)
			block.Labels[0] = string(bytes.TrimSuffix(bytes.TrimPrefix(raw, []byte(`"`)), []byte(`"`)))
		}
	}
	kept := diags[:0:0]
	for _, diag := range diags {
		if diag.Summary == "Invalid string literal" && diag.Subject != nil && withinAny(*diag.Subject, labels) {
			continue
		}
		kept = append(kept, diag)
	}
	return kept
}

func withinAny(r hcl.Range, outer []hcl.Range) bool {
	for _, o := range outer {
		if r.Filename == o.Filename && r.Start.Byte >= o.Start.Byte && r.End.Byte <= o.End.Byte {
			return true
		}
	}
	return false
}

// labelSource is the text of a label range, quotes included.
func labelSource(r hcl.Range, src []byte) []byte {
	if r.Start.Byte < 0 || r.End.Byte > len(src) || r.Start.Byte > r.End.Byte {
		return nil
	}
	return src[r.Start.Byte:r.End.Byte]
}

// appName evaluates the name label of an app block as a template. src is
// the original text of the file the block is in.
func (d *decoder) appName(block *hcl.Block, src []byte) (string, bool) {
	labelRange := block.LabelRanges[0]
	var (
		expr  hclsyntax.Expression
		diags hcl.Diagnostics
	)
	raw := labelSource(labelRange, src)
	_, native := block.Body.(*hclsyntax.Body)
	switch {
	case native && !bytes.HasPrefix(raw, []byte(`"`)):
		// An unquoted label (app database { ... }) is a plain name.
		expr = &hclsyntax.LiteralValueExpr{Val: cty.StringVal(block.Labels[0]), SrcRange: labelRange}
	case native:
		expr, diags = hclsyntax.ParseExpression(raw, labelRange.Filename, labelRange.Start)
	default:
		// A JSON label is an object key; its decoded text is the template.
		// Positions inside it are approximate when the key has escapes.
		start := labelRange.Start
		start.Byte++
		start.Column++
		expr, diags = hclsyntax.ParseTemplate([]byte(block.Labels[0]), labelRange.Filename, start)
	}
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return "", false
	}
	name, ok := d.value(&hcl.Attribute{Name: "name", Expr: expr, Range: labelRange, NameRange: labelRange}, cty.String, "a string")
	if !ok {
		return "", false
	}
	if !validName(name.AsString()) {
		d.diags = append(d.diags, invalidName("app", name.AsString(), labelRange))
		return "", false
	}
	return name.AsString(), true
}
