package placement

import "testing"

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.2", "1.2.0", 0},
		{"v1.2.3", "1.2.3", 0},
		{"1.2.3+build.7", "1.2.3", 0},
		{"1.10", "1.9", 1},
		{"1.2.3", "1.2.4", -1},
		{"2", "1.99.99", 1},
		{"1.2.3.4", "1.2.3", 1},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-rc.1", "1.0.0-beta", 1},
	} {
		a, err := parseVersion(tc.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := parseVersion(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := compareVersions(a, b); got != tc.want {
			t.Errorf("compare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := compareVersions(b, a); got != -tc.want {
			t.Errorf("compare(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestParseVersionRejects(t *testing.T) {
	for _, bad := range []string{"", "x", "1..2", "1.2-", "1.2-rc..1", "1.-2", "latest"} {
		if _, err := parseVersion(bad); err == nil {
			t.Errorf("parseVersion(%q) accepted", bad)
		}
	}
}

func TestVersionConstraint(t *testing.T) {
	for _, tc := range []struct {
		constraint string
		version    string
		want       bool
	}{
		{">= 1.2, < 2", "1.2", true},
		{">= 1.2, < 2", "1.9.9", true},
		{">= 1.2, < 2", "2.0", false},
		{">= 1.2, < 2", "1.1.9", false},
		{"1.4", "1.4.0", true},
		{"= 1.4", "1.4.1", false},
		{"!= 1.4", "1.4.1", true},
		{"> 1.4", "1.4.0", false},
		{"<= 1.4", "1.4.0", true},
		{"~> 1.2", "1.9", true},
		{"~> 1.2", "2.0.0-rc.1", false},
		{"~> 1.2", "1.1", false},
		{"~> 1.2.3", "1.2.9", true},
		{"~> 1.2.3", "1.3.0", false},
		{"~> 1", "1.9", true},
		{"~> 1", "2", false},
	} {
		c, err := parseVersionConstraint(tc.constraint)
		if err != nil {
			t.Fatalf("%q: %v", tc.constraint, err)
		}
		v, err := parseVersion(tc.version)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.allows(v); got != tc.want {
			t.Errorf("%q allows %s = %v, want %v", tc.constraint, tc.version, got, tc.want)
		}
	}
}

func TestParseVersionConstraintRejects(t *testing.T) {
	for _, bad := range []string{"", ">=", ">= 1,", "=> 1", "~> x"} {
		if _, err := parseVersionConstraint(bad); err == nil {
			t.Errorf("parseVersionConstraint(%q) accepted", bad)
		}
	}
}
