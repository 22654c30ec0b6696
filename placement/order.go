package placement

// planningOrder returns the indices of apps (sorted by name) in the order
// to plan them: an app after the apps it keeps away from or wants to be
// near, because those steps read where the others end up. Among apps that
// are ready the first by name goes first. A cycle is broken at one of its
// apps, chosen deterministically, which then sees the others where they run
// now.
func planningOrder(apps []App, rows map[string]int) []int {
	deps := make([][]int, len(apps))
	for i, a := range apps {
		for _, names := range [][]string{a.AwayFrom, a.Near} {
			for _, name := range names {
				// Rows of wanted apps come first, in the order of apps.
				if row, ok := rows[name]; ok && row < len(apps) {
					deps[i] = append(deps[i], row)
				}
			}
		}
	}
	done := make([]bool, len(apps))
	order := make([]int, 0, len(apps))
	for len(order) < len(apps) {
		next := -1
		for i := range apps {
			if !done[i] && firstPending(deps[i], done) < 0 {
				next = i
				break
			}
		}
		if next < 0 {
			next = onCycle(deps, done)
		}
		done[next] = true
		order = append(order, next)
	}
	return order
}

// firstPending returns the first dependency not planned yet, or -1.
func firstPending(deps []int, done []bool) int {
	for _, d := range deps {
		if !done[d] {
			return d
		}
	}
	return -1
}

// onCycle returns an app on a dependency cycle, for when every app left
// waits for another: following pending dependencies from the first app
// left must come back to an app it passed.
func onCycle(deps [][]int, done []bool) int {
	i := 0
	for done[i] {
		i++
	}
	seen := make([]bool, len(deps))
	for !seen[i] {
		seen[i] = true
		i = firstPending(deps[i], done)
	}
	return i
}
