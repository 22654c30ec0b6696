package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ozanturksever/go-cluster/agent"
	"github.com/ozanturksever/go-cluster/control"
)

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:  "node",
		Usage: "show nodes, drain them, change their eligibility",
		Subcommands: []*cli.Command{
			{
				Name: "status", HideHelpCommand: true, Usage: "list nodes, or show one", ArgsUsage: "[NODE]",
				Flags: clusterFlags(), Action: runNodeStatus,
			},
			{
				Name: "eligibility", HideHelpCommand: true, Usage: "allow or forbid new placements on a node", ArgsUsage: "NODE",
				UsageText:   "gcl node eligibility n2 -disable\n   gcl node eligibility n2 -enable",
				Description: "An ineligible node gets nothing new and its instances move away\n(start-before-stop), like a drain that never completes.",
				Flags: append(clusterFlags(),
					&cli.BoolFlag{Name: "enable", Usage: "make the node eligible"},
					&cli.BoolFlag{Name: "disable", Usage: "make the node ineligible"}),
				Action: runNodeEligibility,
			},
			{
				Name: "drain", HideHelpCommand: true, Usage: "move everything off a node", ArgsUsage: "NODE",
				UsageText: "gcl node drain n2 -enable\n   gcl node drain n2 -enable -deadline 5m -detach\n   gcl node drain n2 -disable",
				Description: `A drain hands singleton leadership on the node to a standby gracefully and
moves pool and ring instances start-before-stop, so a job never drops below
its count. It shows progress and reports "drain complete" once the node
runs nothing. -disable ends a drain (the node takes new work again).`,
				Flags: append(clusterFlags(),
					&cli.BoolFlag{Name: "enable", Usage: "start draining"},
					&cli.BoolFlag{Name: "disable", Usage: "stop draining"},
					&cli.DurationFlag{Name: "deadline", Usage: "after `DURATION`, stop whatever has not moved yet (0: wait for graceful moves for ever)"},
					&cli.BoolFlag{Name: "detach", Usage: "return at once"}),
				Action: runNodeDrain,
			},
		},
	}
}

func runNodeStatus(c *cli.Context) error {
	s, err := connectFromFlags(c)
	if err != nil {
		return err
	}
	defer s.Close()
	nodes, err := agent.NodesView(c.Context, s.store, s.js)
	if err != nil {
		return err
	}
	if c.NArg() > 0 {
		i := slices.IndexFunc(nodes, func(n agent.NodeStatus) bool { return n.ID == c.Args().First() })
		if i < 0 {
			return cli.Exit(fmt.Sprintf("node %q is not present", c.Args().First()), exitFailure)
		}
		nodes = nodes[i : i+1]
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, nodes)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tELIGIBLE\tDRAIN\tINSTANCES\tLABELS")
	for _, n := range nodes {
		var labels []string
		for k, v := range n.Labels {
			labels = append(labels, k+"="+v)
		}
		slices.Sort(labels)
		var inst []string
		for _, in := range n.Instances {
			inst = append(inst, in.Job+":"+in.State)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%s\t%s\n", n.ID, n.Address, n.Eligible, n.Drain, strings.Join(inst, ","), strings.Join(labels, ","))
	}
	return tw.Flush()
}

func enableDisable(c *cli.Context) (bool, error) {
	if c.Bool("enable") == c.Bool("disable") {
		return false, cli.Exit("give exactly one of -enable and -disable", exitFailure)
	}
	return c.Bool("enable"), nil
}

func runNodeEligibility(c *cli.Context) error {
	on, err := enableDisable(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return cli.Exit("usage: gcl node eligibility NODE -enable|-disable", exitFailure)
	}
	s, err := connectFromFlags(c)
	if err != nil {
		return err
	}
	defer s.Close()
	ctl, err := s.store.UpdateNodeControl(c.Context, c.Args().First(), func(nc *control.NodeControl) { nc.Ineligible = !on })
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, ctl)
	}
	fmt.Fprintf(c.App.Writer, "node %s: eligible=%v\n", c.Args().First(), on)
	return nil
}

func runNodeDrain(c *cli.Context) error {
	on, err := enableDisable(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return cli.Exit("usage: gcl node drain NODE -enable|-disable", exitFailure)
	}
	node := c.Args().First()
	s, err := connectFromFlags(c)
	if err != nil {
		return err
	}
	defer s.Close()
	ctl, err := s.store.UpdateNodeControl(c.Context, node, func(nc *control.NodeControl) {
		nc.Drain = on
		nc.DrainStarted, nc.DrainDeadline = time.Time{}, time.Time{}
		if on {
			nc.DrainStarted = time.Now().UTC()
			if d := c.Duration("deadline"); d > 0 {
				nc.DrainDeadline = nc.DrainStarted.Add(d)
			}
		}
	})
	if err != nil {
		return err
	}
	if !on || c.Bool("detach") {
		if c.Bool("json") {
			return writeJSON(c.App.Writer, ctl)
		}
		fmt.Fprintf(c.App.Writer, "node %s: drain=%v\n", node, on)
		return nil
	}
	ctx := c.Context
	if d := c.Duration("deadline"); d > 0 {
		// At the deadline the scheduler stops what is left; give the
		// instances their kill timeouts to go before giving up.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d+time.Minute)
		defer cancel()
	}
	changes, err := s.store.Watch(ctx)
	if err != nil {
		return err
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		na, err := s.store.NodeAllocs(ctx, node)
		if err != nil && ctx.Err() == nil {
			return err
		}
		reports, err := s.store.Reports(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		var left []string
		for _, in := range reports[node].Instances {
			if in.State != agent.StateStopped {
				left = append(left, in.Job)
			}
		}
		line := fmt.Sprintf("%d allocations, %d instances left: %s", len(na.Allocs), len(left), strings.Join(left, ", "))
		if line != last && !c.Bool("json") {
			fmt.Fprintf(c.App.Writer, "    %s %s\n", time.Now().Format(time.TimeOnly), line)
			last = line
		}
		if len(na.Allocs) == 0 && len(left) == 0 {
			if c.Bool("json") {
				return writeJSON(c.App.Writer, map[string]any{"node": node, "drain": "complete"})
			}
			fmt.Fprintf(c.App.Writer, "==> node %s: drain complete\n", node)
			return nil
		}
		select {
		case <-ctx.Done():
			return cli.Exit(fmt.Sprintf("node %s: drain not complete: %s", node, line), exitFailure)
		case <-changes:
		case <-tick.C:
		}
	}
}
