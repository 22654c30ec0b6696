package placement

import (
	"errors"
	"regexp/syntax"
	"testing"
)

func TestParseAttribute(t *testing.T) {
	n := &Node{ID: "n1", Address: "10.0.0.1", Labels: map[string]string{"zone": "a", "empty": ""}}
	for _, tc := range []struct {
		attr   string
		want   string
		wantOK bool
	}{
		{"node.id", "n1", true},
		{"node.address", "10.0.0.1", true},
		{"node.labels.zone", "a", true},
		{"node.labels.empty", "", true},
		{"node.labels.missing", "", false},
	} {
		a, err := parseAttribute(tc.attr)
		if err != nil {
			t.Fatalf("%s: %v", tc.attr, err)
		}
		got, ok := a.lookup(n)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s = %q, %v; want %q, %v", tc.attr, got, ok, tc.want, tc.wantOK)
		}
	}
	if _, ok := mustAttribute(t, "node.address").lookup(&Node{ID: "n2"}); ok {
		t.Error("an empty address counts as set")
	}
	for _, bad := range []string{"", "node.labels.", "meta.owner", "node.name", "labels.zone"} {
		if _, err := parseAttribute(bad); err == nil {
			t.Errorf("parseAttribute(%q) accepted", bad)
		}
	}
}

func mustAttribute(t *testing.T, name string) attribute {
	t.Helper()
	a, err := parseAttribute(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestConditionHolds(t *testing.T) {
	n := &Node{ID: "n1", Labels: map[string]string{
		"zone": "eu-1", "cores": "16", "version": "1.4.2", "features": "avx, sse4,aes", "name": "beta",
	}}
	for _, tc := range []struct {
		attr  string
		op    Operator
		value string
		want  bool
	}{
		{"node.labels.zone", OpEqual, "eu-1", true},
		{"node.labels.zone", OpEqual, "eu-2", false},
		{"node.labels.missing", OpEqual, "", false},
		{"node.labels.zone", OpNotEqual, "eu-2", true},
		{"node.labels.zone", OpNotEqual, "eu-1", false},
		{"node.labels.missing", OpNotEqual, "x", true},
		// Numbers compare as numbers: 16 > 9 although "16" < "9".
		{"node.labels.cores", OpGreater, "9", true},
		{"node.labels.cores", OpGreaterEqual, "16", true},
		{"node.labels.cores", OpLess, "16", false},
		{"node.labels.cores", OpLessEqual, "16.0", true},
		// Words compare as strings.
		{"node.labels.name", OpLess, "gamma", true},
		{"node.labels.name", OpGreater, "alpha", true},
		{"node.labels.name", OpGreater, "9", true},
		{"node.labels.missing", OpLess, "9", false},
		{"node.labels.zone", OpRegexp, `^eu-\d$`, true},
		{"node.labels.zone", OpRegexp, `^us-`, false},
		{"node.labels.missing", OpRegexp, `.*`, false},
		{"node.labels.version", OpVersion, ">= 1.2, < 2", true},
		{"node.labels.version", OpVersion, "~> 1.5", false},
		{"node.labels.name", OpVersion, ">= 0", false},
		{"node.labels.features", OpSetContains, "avx,aes", true},
		{"node.labels.features", OpSetContains, "sse4", true},
		{"node.labels.features", OpSetContains, "avx,avx512", false},
		{"node.labels.missing", OpSetContains, "avx", false},
		{"node.labels.zone", OpIsSet, "", true},
		{"node.labels.missing", OpIsSet, "", false},
		{"node.labels.zone", OpIsNotSet, "", false},
		{"node.labels.missing", OpIsNotSet, "", true},
		{"node.id", OpEqual, "n1", true},
	} {
		c, err := compileCondition(tc.attr, tc.op, tc.value)
		if err != nil {
			t.Fatalf("%s %s %s: %v", tc.attr, tc.op, tc.value, err)
		}
		if got := c.holds(n); got != tc.want {
			t.Errorf("%s %s %q = %v, want %v", tc.attr, tc.op, tc.value, got, tc.want)
		}
	}
}

func TestCompileConditionRejects(t *testing.T) {
	_, err := compileCondition("node.labels.zone", OpRegexp, "(")
	var syntaxErr *syntax.Error
	if !errors.As(err, &syntaxErr) {
		t.Errorf("bad regexp: got %v, want a wrapped *syntax.Error", err)
	}
	for _, tc := range []struct {
		attr, value string
		op          Operator
	}{
		{"node.labels.v", ">= x", OpVersion},
		{"node.labels.v", ">= 1.2,", OpVersion},
		{"node.labels.f", " , ", OpSetContains},
		{"node.labels.f", "x", "~"},
		{"meta.owner", "x", OpEqual},
	} {
		if _, err := compileCondition(tc.attr, tc.op, tc.value); err == nil {
			t.Errorf("%s %s %q accepted", tc.attr, tc.op, tc.value)
		}
	}
}

func TestConditionString(t *testing.T) {
	for _, tc := range []struct {
		attr, value string
		op          Operator
		want        string
	}{
		{"node.labels.disk", "ssd", OpEqual, "node.labels.disk = ssd"},
		{"node.labels.gpu", "", OpIsSet, "node.labels.gpu is_set"},
		{"node.labels.v", ">= 1.2", OpVersion, "node.labels.v version >= 1.2"},
	} {
		c, err := compileCondition(tc.attr, tc.op, tc.value)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
