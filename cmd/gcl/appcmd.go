package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/ozanturksever/go-cluster/agent"
	"github.com/ozanturksever/go-cluster/replication"
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
			{Name: "integrity", HideHelpCommand: true, Usage: "check every node's copy of an app's SQLite database", ArgsUsage: "APP",
				UsageText: "gcl app integrity database\n   gcl app integrity database -json -timeout 10m",
				Description: `Every node running the app checks its copy of the database with PRAGMA
quick_check: the leader its live database (without stopping writes), a
standby its replica. One line per node that answered; a node that has a
replication status record but did not answer within -timeout is listed as
"no answer". Exit code 0 only when at least one node answered and every
answer is ok.`,
				Flags:  appFlags(&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "wait at most `DURATION` for the nodes' answers"}),
				Action: runAppIntegrity},
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
	if err := tw.Flush(); err != nil {
		return err
	}
	if r := st.Replication; r != nil {
		writeReplication(w, r, time.Now())
	}
	return nil
}

// writeReplication prints the replication section of `app status`.
func writeReplication(w io.Writer, r *agent.ReplicationView, now time.Time) {
	fmt.Fprintf(w, "Replication: %s\n", r.Path)
	if r.Error != "" {
		fmt.Fprintf(w, "  (status records not readable: %s)\n", r.Error)
		return
	}
	if len(r.Nodes) == 0 {
		fmt.Fprintln(w, "  (no node reports yet)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tROLE\tSEQ\tLAG(ms)\tBEHIND(msgs)\tBYTES-BEHIND\tUPDATED\tERROR")
	for _, row := range replicationRows(r.Nodes, now) {
		fmt.Fprintf(tw, "  %s\n", strings.Join(row, "\t"))
	}
	tw.Flush()
}

// replicationRows are the cells of the replication table: the leader's
// lag and backlog are "-" (it is where the others catch up to).
func replicationRows(nodes []agent.ReplicationNode, now time.Time) [][]string {
	rows := make([][]string, 0, len(nodes))
	for _, n := range nodes {
		lag, behind, bytes := fmt.Sprintf("%.1f", n.LagMS), strconv.FormatUint(n.Behind, 10), humanBytes(int64(n.BytesBehind))
		if n.Role == replication.RoleLeader {
			lag, behind, bytes = "-", "-", "-"
		}
		rows = append(rows, []string{n.Node, n.Role, strconv.FormatUint(n.Seq, 10), lag, behind, bytes, ago(now, n.Updated), n.Error})
	}
	return rows
}

// ago renders how long before now t was: "850ms ago", "12s ago", "3m ago",
// "2h ago", "5d ago"; "-" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms ago", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

// integrityResult is what `app integrity -json` prints.
type integrityResult struct {
	App   string                        `json:"app"`
	OK    bool                          `json:"ok"`
	Nodes []replication.IntegrityReport `json:"nodes"`
	// Missing are nodes with a replication status record that did not
	// answer in time.
	Missing []string `json:"missing,omitempty"`
}

func runAppIntegrity(c *cli.Context) error {
	name, s, err := appSession(c)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	l := s.store.Layout()
	nodes, err := agent.ReplicationNodes(ctx, s.js, l, name)
	if err != nil {
		return err
	}
	expect := make([]string, 0, len(nodes))
	for _, n := range nodes {
		expect = append(expect, n.Node)
	}
	reports, err := gatherIntegrity(ctx, s.nc, replication.IntegritySubject(l.ReplicationSubject(name)), expect)
	if err != nil {
		return err
	}
	res := integrityResult{App: name, Nodes: reports, Missing: missingNodes(expect, reports)}
	res.OK = len(reports) > 0
	for _, r := range reports {
		res.OK = res.OK && r.OK
	}
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, res); err != nil {
			return err
		}
	} else {
		writeIntegrity(c.App.Writer, res)
	}
	switch {
	case len(reports) == 0:
		return cli.Exit(fmt.Sprintf("no node of app %q answered: is it running, with an sqlite block?", name), exitFailure)
	case !res.OK:
		return cli.Exit(fmt.Sprintf("app %s: a copy of the database failed its check", name), exitFailure)
	}
	return nil
}

// gatherIntegrity asks every node running the app for its integrity
// report and collects the answers until every expected node answered or
// ctx ends (when none is expected, for at most 2 s). Reports are sorted
// by node.
func gatherIntegrity(ctx context.Context, nc *nats.Conn, subject string, expect []string) ([]replication.IntegrityReport, error) {
	if len(expect) == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range expect {
		want[n] = true
	}
	got := map[string]replication.IntegrityReport{}
	for len(expect) == 0 || !allAnswered(want, got) {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, nats.ErrNoResponders) {
				break // no node runs the app: the server said so at once
			}
			return nil, err
		}
		var r replication.IntegrityReport
		if json.Unmarshal(m.Data, &r) != nil || r.Node == "" {
			continue
		}
		got[r.Node] = r
	}
	out := make([]replication.IntegrityReport, 0, len(got))
	for _, r := range got {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

func allAnswered(want map[string]bool, got map[string]replication.IntegrityReport) bool {
	for n := range want {
		if _, ok := got[n]; !ok {
			return false
		}
	}
	return true
}

func missingNodes(expect []string, reports []replication.IntegrityReport) []string {
	var out []string
	for _, n := range expect {
		if !slices.ContainsFunc(reports, func(r replication.IntegrityReport) bool { return r.Node == n }) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// writeIntegrity prints `app integrity`: a line per node, then the
// messages of the copies that failed.
func writeIntegrity(w io.Writer, res integrityResult) {
	if len(res.Nodes) == 0 && len(res.Missing) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tSEQ\tRESULT\tTOOK")
	for _, r := range res.Nodes {
		result := "ok"
		if !r.OK {
			result = "FAILED"
		}
		took := time.Duration(r.TookMS * float64(time.Millisecond))
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Node, r.Role, r.Seq, result, roundDuration(took))
	}
	for _, n := range res.Missing {
		fmt.Fprintf(tw, "%s\t-\t-\tno answer\t-\n", n)
	}
	tw.Flush()
	for _, r := range res.Nodes {
		for _, m := range r.Messages {
			if !r.OK {
				fmt.Fprintf(w, "%s: %s\n", r.Node, m)
			}
		}
	}
}

// roundDuration keeps three significant digits or so: 1.23ms, 45.6ms, 2.3s.
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < 100*time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d < 10*time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Millisecond).String()
	}
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
