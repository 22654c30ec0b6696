package jobspec

import "testing"

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"ring", "ring", 0},
		{"ringg", "ring", 1},
		{"singelton", "singleton", 1},
		{"cuont", "count", 1},
		{"kitten", "sitting", 3},
		{"zürich", "zurich", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d (not symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	modes := []string{"singleton", "spread", "replicas", "ring"}
	tests := []struct {
		given string
		want  string
	}{
		{"singelton", "singleton"},
		{"spred", "spread"},
		{"replica", "replicas"},
		{"rign", "ring"},
		{"sharded", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.given, modes); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.given, got, tt.want)
		}
	}
	if got := suggest("icmp", []string{"http", "tcp"}); got != "" {
		t.Errorf("suggest(icmp) = %q: short words must not get far-fetched suggestions", got)
	}
	if got := didYouMean("spred", modes); got != ` Did you mean "spread"?` {
		t.Errorf("didYouMean = %q", got)
	}
}
