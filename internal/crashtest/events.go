//go:build unix

package crashtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Event is one line of a node's event log.
type Event struct {
	Kind  string
	Node  string
	Epoch uint64
	At    time.Time
	File  string
	Line  int
}

func (e Event) String() string {
	return fmt.Sprintf("%s %s epoch=%d at=%s (%s:%d)", e.Kind, e.Node, e.Epoch, e.At.Format("15:04:05.000000"), e.File, e.Line)
}

// ReadEvents parses event logs, each file in order. A last line without a
// newline (being written) is ignored.
func ReadEvents(paths ...string) ([]Event, error) {
	var out []Event
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		text := string(b)
		if i := strings.LastIndexByte(text, '\n'); i >= 0 {
			text = text[:i+1]
		} else {
			text = ""
		}
		sc := bufio.NewScanner(strings.NewReader(text))
		for n := 1; sc.Scan(); n++ {
			f := strings.Fields(sc.Text())
			if len(f) != 4 {
				return nil, fmt.Errorf("%s:%d: malformed event %q", path, n, sc.Text())
			}
			epoch, err1 := strconv.ParseUint(f[2], 10, 64)
			ns, err2 := strconv.ParseInt(f[3], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s:%d: malformed event %q", path, n, sc.Text())
			}
			out = append(out, Event{Kind: f[0], Node: f[1], Epoch: epoch, At: time.Unix(0, ns), File: path, Line: n})
		}
	}
	return out, nil
}

// AppendEvent appends an event line to a log, as a node would.
func AppendEvent(path, kind, node string, epoch uint64, at time.Time) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %s %d %d\n", kind, node, epoch, at.UnixNano())
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// Interval is one term during which a node acted as the leader: from its
// OnActive to its OnPassive, or to the moment it was SIGKILLed or paused
// (SIGSTOP).
type Interval struct {
	Node   string
	Epoch  uint64
	Start  time.Time
	End    time.Time // zero while Open
	Open   bool      // still active as far as the log tells
	Killed bool      // ended by SIGKILL: End is the time just before the kill
	// Paused: ended by SIGSTOP (End is the time just before it). Noticed
	// is when the node, resumed, first told the term was over (its stop,
	// or its "lost" line; zero until then); Passive, that its OnPassive
	// ran (its stop for the term is in the log).
	Paused  bool
	Noticed time.Time
	Passive bool
}

func (iv Interval) String() string {
	end := "open"
	switch {
	case iv.Killed:
		end = "killed " + iv.End.Format("15:04:05.000000")
	case iv.Paused && iv.Noticed.IsZero():
		end = "paused " + iv.End.Format("15:04:05.000000")
	case iv.Paused:
		end = "paused " + iv.End.Format("15:04:05.000000") + ", over " + iv.Noticed.Format("15:04:05.000000")
		if !iv.Passive {
			end += " without OnPassive"
		}
	case !iv.Open:
		end = iv.End.Format("15:04:05.000000")
	}
	return fmt.Sprintf("%s epoch %d [%s, %s]", iv.Node, iv.Epoch, iv.Start.Format("15:04:05.000000"), end)
}

// Intervals turns events into leadership intervals, sorted by start. It
// fails on a log that contradicts itself: a start while already active, a
// stop for another epoch, an exit while active. A term open when its node
// was paused ends at the pause; once resumed, the node must tell the term
// is over (its stop, or its "lost" line: Noticed) before it starts
// another.
func Intervals(events []Event) ([]Interval, error) {
	type key struct{ file, node string }
	open := map[key]*Interval{}
	paused := map[key]int{} // index in out of a paused term whose stop is due
	var out []Interval
	var errs []error
	for _, e := range events {
		k := key{e.File, e.Node}
		cur := open[k]
		switch e.Kind {
		case KindStart:
			if cur != nil {
				errs = append(errs, fmt.Errorf("%v: start while %v is still active", e, *cur))
			}
			if i, ok := paused[k]; ok {
				if out[i].Noticed.IsZero() {
					errs = append(errs, fmt.Errorf("%v: start before the end of the paused term %v", e, out[i]))
				}
				delete(paused, k)
			}
			open[k] = &Interval{Node: e.Node, Epoch: e.Epoch, Start: e.At, Open: true}
		case KindPaused:
			if cur != nil {
				cur.End, cur.Open, cur.Paused = e.At, false, true
				out = append(out, *cur)
				delete(open, k)
				paused[k] = len(out) - 1
			}
		case KindLost:
			if i, ok := paused[k]; ok && cur == nil && out[i].Epoch == e.Epoch && out[i].Noticed.IsZero() {
				out[i].Noticed = e.At
			}
		case KindStop:
			if i, ok := paused[k]; ok && cur == nil {
				delete(paused, k)
				if out[i].Epoch != e.Epoch {
					errs = append(errs, fmt.Errorf("%v: stop for another epoch than the paused %v", e, out[i]))
				}
				if out[i].Noticed.IsZero() {
					out[i].Noticed = e.At
				}
				out[i].Passive = true
				continue
			}
			if cur == nil {
				errs = append(errs, fmt.Errorf("%v: stop while not active", e))
				continue
			}
			if cur.Epoch != e.Epoch {
				errs = append(errs, fmt.Errorf("%v: stop for another epoch than %v", e, *cur))
			}
			cur.End, cur.Open = e.At, false
			out = append(out, *cur)
			delete(open, k)
		case KindKilled:
			delete(paused, k)
			if cur != nil {
				cur.End, cur.Open, cur.Killed = e.At, false, true
				out = append(out, *cur)
				delete(open, k)
			}
		case KindExit:
			if i, ok := paused[k]; ok {
				if out[i].Noticed.IsZero() {
					errs = append(errs, fmt.Errorf("%v: exited without ending the paused term %v", e, out[i]))
				}
				delete(paused, k)
			}
			if cur != nil {
				errs = append(errs, fmt.Errorf("%v: exited while %v is active", e, *cur))
				delete(open, k)
			}
		}
	}
	for _, iv := range open {
		out = append(out, *iv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, errors.Join(errs...)
}

// CheckIntervals proves mutual exclusion: intervals sorted by start never
// overlap (each ends strictly before the next starts; an open one never
// ends), and epochs grow from each term to the next. It returns one error
// per violation.
func CheckIntervals(ivs []Interval) error {
	var errs []error
	for i := 1; i < len(ivs); i++ {
		prev, next := ivs[i-1], ivs[i]
		if prev.Open || !prev.End.Before(next.Start) {
			errs = append(errs, fmt.Errorf("overlap: %v and %v", prev, next))
		}
		if next.Epoch <= prev.Epoch {
			errs = append(errs, fmt.Errorf("epoch did not grow: %v then %v", prev, next))
		}
	}
	return errors.Join(errs...)
}

// Overlaps counts the pairs of consecutive intervals that overlap.
func Overlaps(ivs []Interval) int {
	n := 0
	for i := 1; i < len(ivs); i++ {
		if ivs[i-1].Open || !ivs[i-1].End.Before(ivs[i].Start) {
			n++
		}
	}
	return n
}

// Active returns the open intervals.
func Active(ivs []Interval) []Interval {
	var out []Interval
	for _, iv := range ivs {
		if iv.Open {
			out = append(out, iv)
		}
	}
	return out
}

// FirstStartAfter returns the first interval that started after t.
func FirstStartAfter(ivs []Interval, t time.Time) (Interval, bool) {
	for _, iv := range ivs {
		if iv.Start.After(t) {
			return iv, true
		}
	}
	return Interval{}, false
}

// Find returns the interval of node with epoch.
func Find(ivs []Interval, node string, epoch uint64) (Interval, bool) {
	for _, iv := range ivs {
		if iv.Node == node && iv.Epoch == epoch {
			return iv, true
		}
	}
	return Interval{}, false
}

// Count counts events of kind from node ("" for any node).
func Count(events []Event, kind, node string) int {
	n := 0
	for _, e := range events {
		if e.Kind == kind && (node == "" || e.Node == node) {
			n++
		}
	}
	return n
}

// Has reports whether an event of kind from node with epoch exists.
func Has(events []Event, kind, node string, epoch uint64) bool {
	for _, e := range events {
		if e.Kind == kind && e.Node == node && e.Epoch == epoch {
			return true
		}
	}
	return false
}
