package control

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/ozanturksever/go-cluster/jobspec"
)

// FieldChange is one field that differs between two versions of a job.
type FieldChange struct {
	Path string `json:"path"` // e.g. "backend.exec.args[1]", "count"
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
	// Kind is "+" (added), "-" (removed) or "~" (changed).
	Kind string `json:"kind"`
}

func (c FieldChange) String() string {
	switch c.Kind {
	case "+":
		return fmt.Sprintf("+ %s = %s", c.Path, c.New)
	case "-":
		return fmt.Sprintf("- %s = %s", c.Path, c.Old)
	}
	return fmt.Sprintf("~ %s: %s => %s", c.Path, c.Old, c.New)
}

// DiffSpecs lists the fields that differ from old to new (nil old: all
// added), sorted by path. Where the job file declared the app does not
// count as a change.
func DiffSpecs(old, new *jobspec.App) []FieldChange {
	a, b := flatten(old), flatten(new)
	var out []FieldChange
	for path, nv := range b {
		ov, ok := a[path]
		switch {
		case !ok:
			out = append(out, FieldChange{Path: path, New: nv, Kind: "+"})
		case ov != nv:
			out = append(out, FieldChange{Path: path, Old: ov, New: nv, Kind: "~"})
		}
	}
	for path, ov := range a {
		if _, ok := b[path]; !ok {
			out = append(out, FieldChange{Path: path, Old: ov, Kind: "-"})
		}
	}
	slices.SortFunc(out, func(x, y FieldChange) int { return strings.Compare(x.Path, y.Path) })
	return out
}

// flatten turns a spec into path → JSON scalar, through its JSON form so
// that the paths are the names users see in `job inspect -json`.
func flatten(spec *jobspec.App) map[string]string {
	out := map[string]string{}
	if spec == nil {
		return out
	}
	var v any
	if err := json.Unmarshal(specJSON(spec), &v); err != nil {
		return out
	}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				if prefix == "" && k == "source" {
					continue // where the app was declared, not what it is
				}
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, x)
			}
		case []any:
			for i, x := range t {
				walk(fmt.Sprintf("%s[%d]", prefix, i), x)
			}
		default:
			b, _ := json.Marshal(t)
			out[prefix] = string(b)
		}
	}
	walk("", v)
	return out
}
