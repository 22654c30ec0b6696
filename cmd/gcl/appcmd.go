package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/ozanturksever/go-cluster/agent"
)

// appFlags add the seed's --app spelling to the cluster flags.
func appFlags(extra ...cli.Flag) []cli.Flag {
	return append(append(clusterFlags(), &cli.StringFlag{Name: "app", Usage: "app `NAME` (instead of the argument)"}), extra...)
}

func appName(c *cli.Context) (string, error) {
	if n := c.String("app"); n != "" {
		return n, nil
	}
	if c.NArg() == 1 {
		return c.Args().First(), nil
	}
	return "", cli.Exit(fmt.Sprintf("usage: gcl app %s APP", c.Command.Name), exitFailure)
}

// appSession reads the app name and connects to the cluster.
func appSession(c *cli.Context) (string, *session, error) {
	name, err := appName(c)
	if err != nil {
		return "", nil, err
	}
	s, err := connectFromFlags(c)
	return name, s, err
}

func appCommand() *cli.Command {
	return &cli.Command{
		Name:  "app",
		Usage: "inspect and steer running apps",
		Subcommands: []*cli.Command{
			{Name: "status", HideHelpCommand: true, Usage: "leader, epoch, standbys, instances, ring ownership", ArgsUsage: "APP", Flags: appFlags(), Action: runAppStatus},
			{Name: "stepdown", HideHelpCommand: true, Usage: "hand a singleton's leadership to a standby", ArgsUsage: "APP",
				UsageText: "gcl app stepdown database\n   gcl stepdown --platform prod --app database", Flags: appFlags(), Action: runAppStepDown},
			{Name: "rebalance", HideHelpCommand: true, Usage: "recompute a ring app's partition owners now", ArgsUsage: "APP",
				UsageText: "gcl app rebalance cache\n   gcl app rebalance cache --platform prod", Flags: appFlags(), Action: runAppRebalance},
			{Name: "logs", HideHelpCommand: true, Usage: "show an instance's output", ArgsUsage: "APP",
				UsageText: "gcl app logs api\n   gcl app logs api -f -node n2 -stderr",
				Flags: appFlags(
					&cli.StringFlag{Name: "node", Usage: "`NODE` whose instance to show (default: the leader, or the first instance)"},
					&cli.BoolFlag{Name: "f", Aliases: []string{"follow"}, Usage: "keep printing new output"},
					&cli.BoolFlag{Name: "stderr", Usage: "show stderr instead of stdout"},
					&cli.IntFlag{Name: "n", Value: 50, Usage: "`LINES` of history"}),
				Action: runAppLogs},
		},
	}
}

// stepdownCommand is the seed's top-level spelling of `app stepdown`.
func stepdownCommand() *cli.Command {
	return &cli.Command{Name: "stepdown", HideHelpCommand: true, Usage: "same as gcl app stepdown", ArgsUsage: "APP", Flags: appFlags(), Action: runAppStepDown}
}

func runAppStatus(c *cli.Context) error {
	name, s, err := appSession(c)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := agent.AppView(c.Context, s.store, s.js, name)
	if err != nil {
		return cli.Exit(err.Error(), exitFailure)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, st)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "App:      %s\nMode:     %s\n", st.Name, st.Mode)
	if st.Mode == "singleton" {
		fmt.Fprintf(w, "Leader:   %s (epoch %d)\nStandbys: %s\n", orNone(st.Leader), st.Epoch, orNone(strings.Join(st.Standbys, ", ")))
	}
	if st.Ring != nil {
		fmt.Fprintf(w, "Ring:     %d partitions, assignment %d by %s\n", st.Ring.Partitions, st.Ring.Version, st.Ring.Coordinator)
		nodes := make([]string, 0, len(st.Ring.Owners))
		for n := range st.Ring.Owners {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		for _, n := range nodes {
			fmt.Fprintf(w, "  %s owns %s\n", n, st.Ring.Owners[n])
		}
	}
	fmt.Fprintln(w, "Instances:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tVERSION\tSTATE\tACTIVE\tRESTARTS\tREASON")
	for _, in := range st.Instances {
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%v\t%d\t%s\n", in.Node, in.Version, in.State, in.Active, in.Restarts, in.Reason)
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func runAppStepDown(c *cli.Context) error {
	name, reply, err := askAgents(c, "stepdown")
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) {
		// Only the leader answers.
		return cli.Exit(fmt.Sprintf("app %q has no leader that could step down", name), exitFailure)
	}
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, reply)
	}
	fmt.Fprintf(c.App.Writer, "app %s: %s stepped down\n", name, reply.Node)
	return nil
}

func runAppRebalance(c *cli.Context) error {
	name, reply, err := askAgents(c, "rebalance")
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, reply)
	}
	fmt.Fprintf(c.App.Writer, "app %s: assignment %d over %d members, %d partitions moved\n", name, reply.Version, reply.Members, reply.Moved)
	return nil
}

// askAgents sends the app named on the command line to the agents'
// method and returns the answer; an agent's error comes back as an exit.
func askAgents(c *cli.Context, method string) (string, agent.AppReply, error) {
	var reply agent.AppReply
	name, s, err := appSession(c)
	if err != nil {
		return name, reply, err
	}
	defer s.Close()
	if err := request(s, s.store.Layout().AgentsSubject(method), agent.AppRequest{App: name}, 30*time.Second, &reply); err != nil {
		return name, reply, err
	}
	if reply.Error != "" {
		return name, reply, cli.Exit(fmt.Sprintf("%s: %s", reply.Node, reply.Error), exitFailure)
	}
	return name, reply, nil
}

func runAppLogs(c *cli.Context) error {
	name, s, err := appSession(c)
	if err != nil {
		return err
	}
	defer s.Close()
	node := c.String("node")
	if node == "" {
		st, err := agent.AppView(c.Context, s.store, s.js, name)
		if err != nil {
			return cli.Exit(err.Error(), exitFailure)
		}
		node = st.Leader
		if node == "" && len(st.Instances) > 0 {
			node = st.Instances[0].Node
		}
		if node == "" {
			return cli.Exit(fmt.Sprintf("app %q runs nowhere; give -node", name), exitFailure)
		}
	}
	stream := "stdout"
	if c.Bool("stderr") {
		stream = "stderr"
	}
	req := agent.LogsRequest{App: name, Stream: stream, Lines: c.Int("n")}
	subject := s.store.Layout().AgentCallSubject(node, "logs")
	var inbox *nats.Subscription
	if c.Bool("f") {
		req.Follow, req.Inbox = true, nats.NewInbox()
		if inbox, err = s.nc.SubscribeSync(req.Inbox); err != nil {
			return err
		}
	}
	var reply agent.LogsReply
	if err := request(s, subject, req, 10*time.Second, &reply); err != nil {
		return cli.Exit(fmt.Sprintf("node %s: %v", node, err), exitFailure)
	}
	if reply.Error != "" {
		return cli.Exit(fmt.Sprintf("node %s: %s", node, reply.Error), exitFailure)
	}
	for _, l := range reply.Lines {
		fmt.Fprintln(c.App.Writer, l)
	}
	if inbox == nil {
		return nil
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()
	// The agent follows for as long as we renew; renewing sends no history.
	renew := agent.LogsRequest{App: name, Stream: stream, Lines: -1, Follow: true, Inbox: req.Inbox}
	nextRenew := time.Now().Add(5 * time.Second)
	for ctx.Err() == nil {
		if time.Now().After(nextRenew) {
			_ = request(s, subject, renew, 10*time.Second, &agent.LogsReply{})
			nextRenew = time.Now().Add(5 * time.Second)
		}
		m, err := inbox.NextMsg(time.Second)
		if errors.Is(err, nats.ErrTimeout) {
			continue
		}
		if err != nil {
			break
		}
		c.App.Writer.Write(m.Data)
	}
	return nil
}

// request sends v as JSON and decodes the reply into out.
func request(s *session, subject string, v any, timeout time.Duration, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	m, err := s.nc.Request(subject, b, timeout)
	if err != nil {
		return err
	}
	return json.Unmarshal(m.Data, out)
}
