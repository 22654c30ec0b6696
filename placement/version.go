package placement

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// version is a semver-ish version: any number of numeric segments, an
// optional "v" in front, an optional pre-release after "-"; build metadata
// after "+" is ignored. Missing segments are zero, so 1.2 equals 1.2.0.
type version struct {
	segments   []uint64
	prerelease []string
}

func parseVersion(s string) (version, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	s, _, _ = strings.Cut(s, "+")
	core, pre, hasPre := strings.Cut(s, "-")
	var v version
	for seg := range strings.SplitSeq(core, ".") {
		n, err := strconv.ParseUint(seg, 10, 64)
		if err != nil {
			return version{}, fmt.Errorf("version %q: %w", s, err)
		}
		v.segments = append(v.segments, n)
	}
	if hasPre {
		v.prerelease = strings.Split(pre, ".")
		if slices.Contains(v.prerelease, "") {
			return version{}, fmt.Errorf("version %q: empty pre-release identifier", s)
		}
	}
	return v, nil
}

// compareVersions orders versions as semver does: segment by segment, and
// a pre-release before its release.
func compareVersions(a, b version) int {
	for i := range max(len(a.segments), len(b.segments)) {
		if c := cmp.Compare(versionSegment(a.segments, i), versionSegment(b.segments, i)); c != 0 {
			return c
		}
	}
	switch {
	case len(a.prerelease) == 0 && len(b.prerelease) == 0:
		return 0
	case len(a.prerelease) == 0:
		return 1
	case len(b.prerelease) == 0:
		return -1
	}
	for i := range min(len(a.prerelease), len(b.prerelease)) {
		if c := comparePrerelease(a.prerelease[i], b.prerelease[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.prerelease), len(b.prerelease))
}

func versionSegment(segments []uint64, i int) uint64 {
	if i < len(segments) {
		return segments[i]
	}
	return 0
}

// comparePrerelease orders identifiers as semver does: numbers numerically
// and before words.
func comparePrerelease(a, b string) int {
	an, aErr := strconv.ParseUint(a, 10, 64)
	bn, bErr := strconv.ParseUint(b, 10, 64)
	switch {
	case aErr == nil && bErr == nil:
		return cmp.Compare(an, bn)
	case aErr == nil:
		return -1
	case bErr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// versionConstraint is a comma-separated list of bounds that must all hold,
// e.g. ">= 1.2, < 2". A bound is =, !=, >, >=, <, <= or ~> (pessimistic:
// "~> 1.2" is ">= 1.2, < 2", "~> 1.2.3" is ">= 1.2.3, < 1.3") followed by a
// version; a bare version means =.
type versionConstraint []versionBound

type versionBound struct {
	op string
	v  version
}

// Longer operators first so that ">=" is not read as ">".
var versionOperators = []string{"~>", ">=", "<=", "!=", ">", "<", "="}

func parseVersionConstraint(s string) (versionConstraint, error) {
	var c versionConstraint
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		op := "="
		for _, o := range versionOperators {
			if rest, ok := strings.CutPrefix(part, o); ok {
				op, part = o, strings.TrimSpace(rest)
				break
			}
		}
		v, err := parseVersion(part)
		if err != nil {
			return nil, err
		}
		if op != "~>" {
			c = append(c, versionBound{op: op, v: v})
			continue
		}
		c = append(c, versionBound{op: ">=", v: v}, versionBound{op: "<", v: pessimisticLimit(v)})
	}
	return c, nil
}

// pessimisticLimit is the first version "~> v" excludes: the next value of
// the second-to-last segment given (of the only one, for "~> 1"), as its
// lowest pre-release so that pre-releases of that version are excluded too.
func pessimisticLimit(v version) version {
	keep := max(len(v.segments)-1, 1)
	limit := version{segments: slices.Clone(v.segments[:keep]), prerelease: []string{"0"}}
	limit.segments[keep-1]++
	return limit
}

func (c versionConstraint) allows(v version) bool {
	for _, b := range c {
		r := compareVersions(v, b.v)
		var ok bool
		switch b.op {
		case "=":
			ok = r == 0
		case "!=":
			ok = r != 0
		case ">":
			ok = r > 0
		case ">=":
			ok = r >= 0
		case "<":
			ok = r < 0
		case "<=":
			ok = r <= 0
		}
		if !ok {
			return false
		}
	}
	return true
}
