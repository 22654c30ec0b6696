//go:build unix

package crashtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	cluster "github.com/ozanturksever/go-cluster"
)

// Ring mode: the node runs RingApp with RingPartitions partitions and logs,
// per partition, when it starts owning it and when it stopped.
const (
	ModeRing       = "ring"
	RingApp        = "cache"
	RingPartitions = 32

	// KindOwn is written when OnOwn starts and KindRelease when OnRelease
	// returned, one line per partition with the partition in the epoch
	// field: the logged interval contains the real ownership, so no overlap
	// in the log means no overlap in fact.
	KindOwn     = "own"
	KindRelease = "release"
)

func runRingNode(p *cluster.Platform, ev *eventLog, sigs <-chan os.Signal) int {
	app := cluster.NewApp(RingApp, cluster.Spread(), cluster.Ring(RingPartitions))
	app.OnStart(func(context.Context) error { ev.write(KindReady, 0); return nil })
	app.OnOwn(func(_ context.Context, parts []int) error {
		for _, part := range parts {
			ev.write(KindOwn, uint64(part))
		}
		return nil
	})
	app.OnRelease(func(_ context.Context, parts []int) error {
		for _, part := range parts {
			ev.write(KindRelease, uint64(part))
		}
		return nil
	})
	if err := p.Register(app); err != nil {
		fmt.Fprintf(os.Stderr, "crashtest node: %v\n", err)
		return 1
	}
	return runUntilSignalled(p, ev, sigs, nil, nil)
}

// PartitionInterval is a time a node owned a partition, per the logs.
type PartitionInterval struct {
	Partition int
	Node      string
	Start     time.Time
	End       time.Time // zero while open
	Open      bool
	Killed    bool
}

func (iv PartitionInterval) String() string {
	end := "open"
	if !iv.Open {
		end = iv.End.Format("15:04:05.000000")
	}
	if iv.Killed {
		end = "killed " + end
	}
	return fmt.Sprintf("partition %d on %s [%s, %s]", iv.Partition, iv.Node, iv.Start.Format("15:04:05.000000"), end)
}

// PartitionIntervals turns ring events into ownership intervals, sorted by
// partition then start. A kill ends every open interval of the node.
func PartitionIntervals(events []Event) ([]PartitionInterval, error) {
	type key struct {
		file, node string
		part       int
	}
	open := map[key]*PartitionInterval{}
	var out []PartitionInterval
	var errs []error
	for _, e := range events {
		switch e.Kind {
		case KindOwn:
			k := key{e.File, e.Node, int(e.Epoch)}
			if open[k] != nil {
				errs = append(errs, fmt.Errorf("%v: owned again without a release", e))
			}
			open[k] = &PartitionInterval{Partition: k.part, Node: e.Node, Start: e.At, Open: true}
		case KindRelease:
			k := key{e.File, e.Node, int(e.Epoch)}
			if cur := open[k]; cur != nil {
				cur.End, cur.Open = e.At, false
				out = append(out, *cur)
				delete(open, k)
			}
		case KindKilled:
			for k, cur := range open {
				if k.file == e.File && k.node == e.Node {
					cur.End, cur.Open, cur.Killed = e.At, false, true
					out = append(out, *cur)
					delete(open, k)
				}
			}
		case KindExit:
			for k, cur := range open {
				if k.file == e.File && k.node == e.Node {
					errs = append(errs, fmt.Errorf("%v: exited while owning partition %d", e, cur.Partition))
					delete(open, k)
				}
			}
		}
	}
	for _, iv := range open {
		out = append(out, *iv)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Start.Before(out[j].Start)
	})
	return out, errors.Join(errs...)
}

// CheckPartitionOverlaps fails if two intervals of one partition overlap.
func CheckPartitionOverlaps(ivs []PartitionInterval) error {
	var errs []error
	for i := 1; i < len(ivs); i++ {
		prev, cur := ivs[i-1], ivs[i]
		if prev.Partition != cur.Partition {
			continue
		}
		if prev.Open || !prev.End.Before(cur.Start) {
			errs = append(errs, fmt.Errorf("two owners at once: %v and %v", prev, cur))
		}
	}
	return errors.Join(errs...)
}

// Owners returns the open owner of each partition (absent: none).
func Owners(ivs []PartitionInterval) map[int]string {
	out := map[int]string{}
	for _, iv := range ivs {
		if iv.Open {
			out[iv.Partition] = iv.Node
		}
	}
	return out
}
