package jobspec

import (
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2"
)

// validateApp checks the rules that tie attributes of one app together: the
// settings each mode needs or forbids. Single values were checked while
// decoding, where their attribute was at hand.
func validateApp(decoded *decodedApp) hcl.Diagnostics {
	var diags hcl.Diagnostics
	app := decoded.app
	if app.Mode == "" {
		// The mode itself was reported as wrong.
		return diags
	}
	onlyWith := func(name string, mode Mode, why string) {
		if attr := decoded.attrs[name]; attr != nil && app.Mode != mode {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("%q is only valid with mode %q", name, mode),
				Detail:   fmt.Sprintf("This app runs in mode %q; %s", app.Mode, why),
				Subject:  attr.NameRange.Ptr(),
				Context:  attr.Range.Ptr(),
			})
		}
	}
	onlyWith("count", ModeReplicas, "count sets the number of instances of mode \"replicas\".")
	onlyWith("partitions", ModeRing, "partitions sets the size of the hash ring of mode \"ring\".")

	required := func(name string, mode Mode, example string) {
		if app.Mode == mode && decoded.attrs[name] == nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Missing %q for mode %q", name, mode),
				Detail:   fmt.Sprintf("Mode %q needs %s, such as %s.", mode, name, example),
				Subject:  modeRange(decoded).Ptr(),
			})
		}
	}
	required("count", ModeReplicas, "count = 3")
	required("partitions", ModeRing, "partitions = 256: changing it later moves most keys, so choose it once")

	// A VIP and a replicated database need a single writer: with more than
	// one active instance they would be claimed by several nodes at once.
	singleWriter := map[string]string{"vip": "a VIP", "sqlite": "a replicated SQLite database"}
	for _, name := range shorthandNames {
		if app.Mode == ModeSingleton {
			break
		}
		subject := decoded.blocks[name]
		var rng *hcl.Range
		switch {
		case subject != nil:
			rng = subject.DefRange.Ptr()
		case decoded.attrs[name] != nil:
			rng = decoded.attrs[name].NameRange.Ptr()
		default:
			continue
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("%q needs mode \"singleton\"", name),
			Detail:   fmt.Sprintf("This app runs in mode %q with several active instances, but %s follows exactly one active instance.", app.Mode, singleWriter[name]),
			Subject:  rng,
		})
	}

	if attr := decoded.attrs["away_from"]; attr != nil && slices.Contains(app.AwayFrom, app.Name) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "App is away from itself",
			Detail:   "To keep instances of this app on different nodes, use a constraint with operator = \"distinct_hosts\".",
			Subject:  attr.Expr.Range().Ptr(),
		})
	}
	if attr := decoded.attrs["near"]; attr != nil {
		for _, name := range app.Near {
			if slices.Contains(app.AwayFrom, name) {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Contradicting placement",
					Detail:   fmt.Sprintf("The app %q is listed in both near and away_from.", name),
					Subject:  attr.Expr.Range().Ptr(),
				})
			}
		}
	}

	if !decoded.declares("backend", "vip", "sqlite") {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "App runs nothing",
			Detail:   "This app has no backend, vip or sqlite, so holding it has no effect on a node. Add a backend \"exec\" or backend \"systemd\" block.",
			Subject:  decoded.label.Ptr(),
		})
	}
	return diags
}

// declares reports whether the app sets any of the named settings, as an
// attribute or a block, valid or not.
func (decoded *decodedApp) declares(names ...string) bool {
	for _, name := range names {
		if decoded.attrs[name] != nil || decoded.blocks[name] != nil {
			return true
		}
	}
	return false
}

// modeRange is where a missing setting for the mode should be added: at the
// mode attribute, or at the app's name when the mode is the default.
func modeRange(decoded *decodedApp) hcl.Range {
	if attr := decoded.attrs["mode"]; attr != nil {
		return attr.Range
	}
	return decoded.label
}

// validateAcrossApps checks what involves several apps, possibly from
// different files: unique names, and references in away_from and near.
func validateAcrossApps(apps []*decodedApp) hcl.Diagnostics {
	var diags hcl.Diagnostics
	byName := make(map[string]*decodedApp, len(apps))
	names := make([]string, 0, len(apps))
	for _, decoded := range apps {
		name := decoded.app.Name
		if first, dup := byName[name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate app",
				Detail:   fmt.Sprintf("An app named %q is already declared at %s. App names are unique across all job files of a cluster.", name, location(first.label)),
				Subject:  decoded.label.Ptr(),
			})
			continue
		}
		byName[name] = decoded
		names = append(names, name)
	}
	for _, decoded := range apps {
		diags = append(diags, unknownApps(decoded.attrs["away_from"], decoded.app.AwayFrom, byName, names)...)
		diags = append(diags, unknownApps(decoded.attrs["near"], decoded.app.Near, byName, names)...)
	}
	return diags
}

// unknownApps warns about references to apps not declared in the files
// given. It is only a warning: the other app may come from a job file that
// already runs on the cluster.
func unknownApps(attr *hcl.Attribute, refs []string, byName map[string]*decodedApp, names []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, ref := range refs {
		if _, known := byName[ref]; known || !validName(ref) {
			// Invalid names were reported already.
			continue
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Reference to an app not in these files",
			Detail:   fmt.Sprintf("No app %q is declared in the files given; placement honours it only if such an app runs on the cluster.%s", ref, didYouMean(ref, names)),
			Subject:  attr.Expr.Range().Ptr(),
		})
	}
	return diags
}
