package jobspec

import "unicode/utf8"

// maxSuggestionDistance is the largest edit distance at which a known name
// is still offered as "did you mean": enough for typical typos
// ("singelton", "SIGTREM").
const maxSuggestionDistance = 3

// suggest returns the candidate closest to given by edit distance, or "" when
// none is close enough to be a plausible typo. Short words allow fewer
// edits: two edits turn "icmp" into "tcp", which is no typo.
func suggest(given string, candidates []string) string {
	limit := min(maxSuggestionDistance, max(1, utf8.RuneCountInString(given)/3))
	best, bestDistance := "", limit+1
	for _, candidate := range candidates {
		if d := editDistance(given, candidate); d < bestDistance {
			best, bestDistance = candidate, d
		}
	}
	return best
}

// didYouMean formats the suggestion for given as a sentence to append to a
// diagnostic detail, or returns "" when there is no plausible suggestion.
func didYouMean(given string, candidates []string) string {
	if s := suggest(given, candidates); s != "" {
		return " Did you mean \"" + s + "\"?"
	}
	return ""
}

// editDistance counts the insertions, deletions, substitutions and swaps of
// two neighbouring characters that turn a into b (the optimal string
// alignment distance). Swaps count as one edit because they are the most
// common typo ("cuont"); runes are compared, so non-ASCII names are
// measured fairly.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows of the dynamic-programming table suffice: a row depends on
	// the previous one, and on the one before that for swaps.
	prevPrev := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	curr := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		curr[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			curr[j] = min(prev[j]+1, curr[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				curr[j] = min(curr[j], prevPrev[j-2]+1)
			}
		}
		prevPrev, prev, curr = prev, curr, prevPrev
	}
	return prev[len(rb)]
}
