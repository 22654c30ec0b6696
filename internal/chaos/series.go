//go:build linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
)

// Series runs trials of each fault, one fault after the other: first the
// faults of the embedded topology (`gcl agent -server`) on one lab, then
// those that need the external one on another. A lab that does not get
// healthy again is rebuilt (its trial stays counted). report is called
// after every trial with the lab it ran on.
func Series(ctx context.Context, cfg Config, faults []Fault, trials int, report func(*Lab, *Trial)) ([]*Trial, error) {
	var all []*Trial
	base := cfg.Dir
	labs := 0
	for _, external := range []bool{false, true} {
		var mine []Fault
		for _, f := range faults {
			if f.External == external {
				mine = append(mine, f)
			}
		}
		if len(mine) == 0 {
			continue
		}
		c := cfg
		if !external {
			c.NATSServer = ""
		} else if c.NATSServer == "" {
			return all, errors.New("chaos: the external-NATS faults need Config.NATSServer")
		}
		var lab *Lab
		build := func() error {
			if lab != nil {
				if err := lab.Close(); err != nil {
					cfg.Logf("chaos: close lab: %v", err)
				}
			}
			labs++
			c.Dir = filepath.Join(base, fmt.Sprintf("lab%d", labs))
			var err error
			lab, err = Start(ctx, c)
			return err
		}
		if err := build(); err != nil {
			return all, err
		}
		for _, f := range mine {
			for n := 0; n < trials; n++ {
				if ctx.Err() != nil {
					lab.Close()
					return all, ctx.Err()
				}
				tr := lab.RunTrial(ctx, f, n)
				all = append(all, tr)
				report(lab, tr)
				if tr.Recovered {
					continue
				}
				// The next trial would start from a broken cluster:
				// give it time, then start afresh.
				if err := lab.WaitHealthy(ctx, RecoverWithin, SettleFor); err != nil {
					cfg.Logf("chaos: the lab does not recover (%v); rebuilding it", err)
					if err := build(); err != nil {
						return all, err
					}
				}
			}
		}
		if err := lab.Close(); err != nil {
			return all, err
		}
	}
	return all, nil
}
