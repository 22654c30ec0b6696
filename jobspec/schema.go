package jobspec

import (
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The schemas below are the job file format: every attribute and block a job
// file may contain. Names not listed here are reported as unsupported (with
// HCL's "did you mean" suggestion), so a typo never silently drops a setting.

var fileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "app", LabelNames: []string{"name"}},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
	},
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"},
		{Name: "default"},
		{Name: "description"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "validation"},
	},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true},
		{Name: "error_message", Required: true},
	},
}

// shorthandNames are settings written either as an attribute holding the one
// essential value (vip = "10.0.1.100/24") or as a block with all options.
var shorthandNames = []string{"vip", "sqlite"}

// appAttributes and appBlocks exclude the shorthand names, which appSchema
// adds in the form each syntax needs.
var appAttributes = []hcl.AttributeSchema{
	{Name: "mode"},
	{Name: "count"},
	{Name: "partitions"},
	{Name: "away_from"},
	{Name: "near"},
}

var appBlocks = []hcl.BlockHeaderSchema{
	{Type: "backend", LabelNames: []string{"type"}},
	{Type: "constraint"},
	{Type: "affinity"},
	{Type: "spread"},
	{Type: "service", LabelNames: []string{"name"}},
	{Type: "restart"},
	{Type: "update"},
	{Type: "meta"},
}

var execBackendSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "command", Required: true},
		{Name: "args"},
		{Name: "env"},
		{Name: "dir"},
		{Name: "user"},
		{Name: "kill_signal"},
		{Name: "kill_timeout"},
	},
}

var systemdBackendSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "unit", Required: true},
	},
}

var vipSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "address", Required: true},
		{Name: "interface"},
		{Name: "arp_count"},
	},
}

var sqliteSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "path", Required: true},
		{Name: "snapshot_interval"},
		{Name: "retention"},
	},
}

var constraintSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "attribute"},
		{Name: "operator"},
		{Name: "value"},
	},
}

var affinitySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "attribute", Required: true},
		{Name: "operator"},
		{Name: "value"},
		{Name: "weight"},
	},
}

var spreadSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "attribute", Required: true},
		{Name: "weight"},
	},
}

var serviceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "port", Required: true},
		{Name: "protocol"},
		{Name: "tags"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "check"},
	},
}

var checkSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type", Required: true},
		{Name: "path"},
		{Name: "interval"},
		{Name: "timeout"},
	},
}

var restartSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "attempts"},
		{Name: "interval"},
		{Name: "delay"},
		{Name: "mode"},
	},
}

var updateSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "max_parallel"},
		{Name: "min_healthy_time"},
		{Name: "healthy_deadline"},
	},
}

// appSchema returns the schema of one app body. Native syntax tells the
// shorthand attribute from the block by its form, so it declares both. In
// JSON both are an object property, so the property's own JSON type decides:
// an object or an array of objects is the block form, anything else is the
// shorthand.
func appSchema(body hcl.Body) *hcl.BodySchema {
	schema := &hcl.BodySchema{
		Attributes: slices.Clone(appAttributes),
		Blocks:     slices.Clone(appBlocks),
	}
	_, native := body.(*hclsyntax.Body)
	var properties hcl.Attributes
	if !native {
		// A JSON body lists every property as an attribute here; errors are
		// reported by the real decode that follows.
		properties, _ = body.JustAttributes()
	}
	for _, name := range shorthandNames {
		property, inJSON := properties[name]
		if native || !inJSON || isJSONStructure(property.Expr) {
			schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: name})
		}
		if native || (inJSON && !isJSONStructure(property.Expr)) {
			schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: name})
		}
	}
	return schema
}

// isJSONStructure reports whether a JSON property holds an object or array,
// judged statically so that no expression is evaluated twice.
func isJSONStructure(expr hcl.Expression) bool {
	if _, diags := hcl.ExprMap(expr); !diags.HasErrors() {
		return true
	}
	_, diags := hcl.ExprList(expr)
	return !diags.HasErrors()
}
