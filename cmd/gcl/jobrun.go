package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/urfave/cli/v2"

	"github.com/ozanturksever/go-cluster/agent"
	"github.com/ozanturksever/go-cluster/control"
	"github.com/ozanturksever/go-cluster/jobspec"
)

func jobRunCommand() *cli.Command {
	return &cli.Command{
		Name:            "run",
		HideHelpCommand: true,
		Usage:           "submit job files and wait until they run",
		ArgsUsage:       "FILE...",
		UsageText: `gcl job run examples/jobs/api.hcl
   gcl job run -detach -var env=prod jobs/
   gcl job run -check-index 3 examples/jobs/api.hcl`,
		Description: `Submits every app in the files as a job (a new version where it changed) and
shows progress until every instance runs at the new version, or a failure
reason is known. Nothing is submitted when a file has errors.

EXIT CODES:
   0  every job runs (or, with -detach, was submitted)
   1  invalid job file, unreachable cluster, -check-index mismatch or an error
   2  a job could not be placed or its instances failed`,
		Flags: append(append(variableFlags()[:2:2], clusterFlags()...),
			&cli.BoolFlag{Name: "detach", Usage: "return once submitted"},
			&cli.Int64Flag{Name: "check-index", Value: -1, Usage: "submit only if the job is at version `N` (0: must not exist)"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up waiting after `DURATION`"},
		),
		Action: func(c *cli.Context) error {
			apps, sources, s, err := jobsSession(c)
			if err != nil {
				return err
			}
			defer s.Close()
			var submitted []control.Job
			for _, app := range apps {
				opts := control.SubmitOptions{Source: sources[app.Source.Filename]}
				if ci := c.Int64("check-index"); ci >= 0 {
					v := uint64(ci)
					opts.CheckVersion = &v
				}
				job, changed, err := s.store.SubmitJob(c.Context, app, opts)
				if err != nil {
					return cli.Exit(err.Error(), exitFailure)
				}
				if !c.Bool("json") {
					if changed {
						fmt.Fprintf(c.App.Writer, "==> job %q submitted: version %d\n", job.Name, job.Version)
					} else {
						fmt.Fprintf(c.App.Writer, "==> job %q unchanged: version %d\n", job.Name, job.Version)
					}
				}
				submitted = append(submitted, job)
			}
			if c.Bool("detach") {
				if c.Bool("json") {
					return writeJSON(c.App.Writer, submitted)
				}
				return nil
			}
			return waitForJobs(c, s, submitted, c.Duration("timeout"))
		},
	}
}

// jobsSession parses the job files on the command line, then connects:
// a bad file fails before the cluster is contacted.
func jobsSession(c *cli.Context) ([]*jobspec.App, map[string]string, *session, error) {
	apps, sources, err := loadJobs(c)
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := connectFromFlags(c)
	return apps, sources, s, err
}

// loadJobs parses the job files on the command line; diagnostics are
// printed and nothing is returned when any file has errors.
func loadJobs(c *cli.Context) ([]*jobspec.App, map[string]string, error) {
	result, diags, err := parseJobs(c)
	if err != nil {
		return nil, nil, err
	}
	if err := writeDiagnostics(c.App.ErrWriter, result.Files, diags); err != nil {
		return nil, nil, err
	}
	if diags.HasErrors() {
		return nil, nil, cli.Exit("invalid job files: nothing submitted", exitFailure)
	}
	return result.Apps, fileSources(result.Files), nil
}

func fileSources(files map[string]*hcl.File) map[string]string {
	out := map[string]string{}
	for name, f := range files {
		out[name] = string(f.Bytes)
	}
	return out
}

// waitForJobs shows progress until every job is complete or failed.
func waitForJobs(c *cli.Context, s *session, jobs []control.Job, timeout time.Duration) error {
	return waitForJobsOutput(c, s, jobs, timeout, c.Bool("json"))
}

// waitForJobsOutput is waitForJobs; printJSON prints the final statuses as
// JSON (text progress is printed only without -json).
func waitForJobsOutput(c *cli.Context, s *session, jobs []control.Job, timeout time.Duration, printJSON bool) error {
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	changes, err := s.store.Watch(ctx)
	if err != nil {
		return err
	}
	last := map[string]string{}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		done, failed := 0, []string{}
		var statuses []agent.JobStatus
		// One picture of the cluster per round, however many jobs.
		all, err := agent.JobsView(ctx, s.store, s.js)
		if err != nil {
			return cli.Exit(err.Error(), exitFailure)
		}
		for _, j := range jobs {
			i := slices.IndexFunc(all, func(st agent.JobStatus) bool { return st.Name == j.Name })
			if i < 0 {
				if j.Stopped {
					done++ // purged
					continue
				}
				return cli.Exit(fmt.Sprintf("job %q disappeared", j.Name), exitFailure)
			}
			st := all[i]
			statuses = append(statuses, st)
			line, complete, failure := progressLine(st, j.Version)
			if !c.Bool("json") && line != last[j.Name] {
				fmt.Fprintf(c.App.Writer, "    %s: %s\n", j.Name, line)
				last[j.Name] = line
			}
			switch {
			case failure != "":
				failed = append(failed, fmt.Sprintf("%s: %s", j.Name, failure))
			case complete:
				done++
			}
		}
		if done+len(failed) == len(jobs) {
			if printJSON {
				if err := writeJSON(c.App.Writer, statuses); err != nil {
					return err
				}
			}
			if len(failed) > 0 {
				return cli.Exit("failed:\n  "+strings.Join(failed, "\n  "), exitChanges)
			}
			if !c.Bool("json") {
				if slices.ContainsFunc(jobs, func(j control.Job) bool { return j.Stopped }) {
					fmt.Fprintln(c.App.Writer, "==> done")
				} else {
					fmt.Fprintln(c.App.Writer, "==> all instances running")
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return cli.Exit(fmt.Sprintf("gave up waiting after %v; see gcl job status", timeout), exitFailure)
		case <-changes:
		case <-tick.C:
		}
	}
}

// progressLine summarizes a job's rollout of version v.
func progressLine(st agent.JobStatus, v uint64) (line string, complete bool, failure string) {
	if st.Stopped {
		running := 0
		for _, in := range st.Instances {
			if in.State == agent.StateRunning || in.State == agent.StateStandby || in.State == agent.StateStarting {
				running++
			}
		}
		return fmt.Sprintf("stopping, %d instances left", running), running == 0 && len(st.Allocs) == 0, ""
	}
	p := st.Progress
	if p == nil || p.Version != v {
		return "waiting for the scheduler", false, ""
	}
	for _, in := range st.Instances {
		if in.Version == v && in.State == agent.StateFailed {
			return fmt.Sprintf("instance on %s failed: %s", in.Node, in.Reason), false, fmt.Sprintf("instance on %s failed: %s", in.Node, in.Reason)
		}
	}
	if p.State.Failed != "" {
		return "cannot place: " + p.State.Failed, false, p.State.Failed
	}
	line = fmt.Sprintf("%d/%d running", p.State.Running, p.State.Want)
	if p.State.Updating {
		line += " (rolling update)"
	}
	return line, p.State.Complete, ""
}

func jobStatusCommand() *cli.Command {
	return &cli.Command{
		Name:            "status",
		HideHelpCommand: true,
		Usage:           "show jobs, or one job's instances",
		ArgsUsage:       "[JOB]",
		UsageText: `gcl job status
   gcl job status api -json`,
		Flags: clusterFlags(),
		Action: func(c *cli.Context) error {
			s, err := connectFromFlags(c)
			if err != nil {
				return err
			}
			defer s.Close()
			if c.NArg() == 0 {
				list, err := agent.JobsView(c.Context, s.store, s.js)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return writeJSON(c.App.Writer, list)
				}
				tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "JOB\tVERSION\tMODE\tSTATUS")
				for _, st := range list {
					line, _, _ := progressLine(st, st.Version)
					if st.Stopped {
						line = "stopped"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", st.Name, st.Version, st.Mode, line)
				}
				return tw.Flush()
			}
			st, err := agent.JobView(c.Context, s.store, s.js, c.Args().First())
			if err != nil {
				return cli.Exit(err.Error(), exitFailure)
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, st)
			}
			printJobStatus(c.App.Writer, st)
			return nil
		},
	}
}

func printJobStatus(w io.Writer, st agent.JobStatus) {
	line, _, _ := progressLine(st, st.Version)
	if st.Stopped {
		line = "stopped"
	}
	fmt.Fprintf(w, "Job:      %s\nVersion:  %d\nMode:     %s\nStatus:   %s\n", st.Name, st.Version, st.Mode, line)
	if st.Progress != nil && len(st.Progress.Placement) > 0 {
		fmt.Fprintln(w, "Placement:")
		for _, l := range st.Progress.Placement {
			fmt.Fprintln(w, "  "+l)
		}
	}
	fmt.Fprintln(w, "\nInstances:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVERSION\tSTATE\tACTIVE\tRESTARTS\tSINCE\tREASON")
	for _, in := range st.Instances {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%v\t%d\t%s\t%s\n", in.Node, in.Version, in.State, in.Active, in.Restarts, in.Since.Local().Format(time.TimeOnly), in.Reason)
	}
	tw.Flush()
}

func jobStopCommand() *cli.Command {
	return &cli.Command{
		Name:            "stop",
		HideHelpCommand: true,
		Usage:           "stop a job everywhere",
		ArgsUsage:       "JOB",
		UsageText: `gcl job stop api
   gcl job stop -purge api`,
		Description: "Stopping records a new version (revert brings the job back); -purge also\nforgets the job and its history.",
		Flags: append(clusterFlags(),
			&cli.BoolFlag{Name: "purge", Usage: "remove the job and its history"},
			&cli.BoolFlag{Name: "detach", Usage: "return without waiting for the instances to stop"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: gcl job stop JOB", exitFailure)
			}
			s, err := connectFromFlags(c)
			if err != nil {
				return err
			}
			defer s.Close()
			job, err := s.store.StopJob(c.Context, c.Args().First(), c.Bool("purge"))
			if err != nil {
				return cli.Exit(err.Error(), exitFailure)
			}
			if !c.Bool("json") {
				fmt.Fprintf(c.App.Writer, "==> job %q stopped (version %d)\n", job.Name, job.Version)
			}
			if c.Bool("detach") || c.Bool("purge") {
				if c.Bool("json") {
					return writeJSON(c.App.Writer, job)
				}
				return nil
			}
			return waitForJobs(c, s, []control.Job{job}, 5*time.Minute)
		},
	}
}

func jobHistoryCommand() *cli.Command {
	return &cli.Command{
		Name:            "history",
		HideHelpCommand: true,
		Usage:           "list a job's versions with what changed in each",
		ArgsUsage:       "JOB",
		Flags:           clusterFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: gcl job history JOB", exitFailure)
			}
			s, err := connectFromFlags(c)
			if err != nil {
				return err
			}
			defer s.Close()
			hist, err := s.store.JobHistory(c.Context, c.Args().First())
			if err != nil {
				return cli.Exit(err.Error(), exitFailure)
			}
			type version struct {
				Version     uint64                `json:"version"`
				Stopped     bool                  `json:"stopped"`
				SubmittedAt time.Time             `json:"submitted_at"`
				Changes     []control.FieldChange `json:"changes"`
			}
			var out []version
			var prev *jobspec.App
			for _, j := range hist {
				out = append(out, version{j.Version, j.Stopped, j.SubmittedAt, control.DiffSpecs(prev, j.Spec)})
				prev = j.Spec
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, out)
			}
			for i := len(out) - 1; i >= 0; i-- {
				v := out[i]
				state := ""
				if v.Stopped {
					state = " (stop)"
				}
				fmt.Fprintf(c.App.Writer, "Version %d%s, submitted %s\n", v.Version, state, v.SubmittedAt.Local().Format(time.DateTime))
				if i > 0 {
					for _, ch := range v.Changes {
						fmt.Fprintln(c.App.Writer, "    "+ch.String())
					}
				}
			}
			return nil
		},
	}
}

func jobRevertCommand() *cli.Command {
	return &cli.Command{
		Name:            "revert",
		HideHelpCommand: true,
		Usage:           "run an earlier version of a job again",
		ArgsUsage:       "JOB VERSION",
		Flags:           append(clusterFlags(), &cli.BoolFlag{Name: "detach", Usage: "return once submitted"}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return cli.Exit("usage: gcl job revert JOB VERSION", exitFailure)
			}
			var v uint64
			if _, err := fmt.Sscan(c.Args().Get(1), &v); err != nil {
				return cli.Exit(fmt.Sprintf("version %q: not a number", c.Args().Get(1)), exitFailure)
			}
			s, err := connectFromFlags(c)
			if err != nil {
				return err
			}
			defer s.Close()
			job, err := s.store.RevertJob(c.Context, c.Args().First(), v)
			if err != nil {
				return cli.Exit(err.Error(), exitFailure)
			}
			if !c.Bool("json") {
				fmt.Fprintf(c.App.Writer, "==> job %q reverted to version %d as version %d\n", job.Name, v, job.Version)
			}
			if c.Bool("detach") {
				return nil
			}
			return waitForJobs(c, s, []control.Job{job}, 5*time.Minute)
		},
	}
}

// planEntry is one job's plan.
type planEntry struct {
	Job       string                `json:"job"`
	Action    string                `json:"action"` // create, update, unchanged, stop
	Version   uint64                `json:"current_version"`
	Changes   []control.FieldChange `json:"changes,omitempty"`
	Placement []string              `json:"placement,omitempty"`
	Nodes     []string              `json:"nodes,omitempty"`
}

func jobPlanCommand() *cli.Command {
	return &cli.Command{
		Name:            "plan",
		HideHelpCommand: true,
		Usage:           "show what running job files would change",
		ArgsUsage:       "FILE...",
		UsageText: `gcl job plan examples/jobs/api.hcl
   gcl job plan -json jobs/`,
		Description: `Compares the files with the running versions, field by field, and dry-runs
placement on the current nodes with the reasons nodes were left out.

EXIT CODES:
   0  no changes
   1  invalid job file, unreachable cluster or an error
   2  changes (run "gcl job run" to apply them)`,
		Flags: append(variableFlags()[:2:2], clusterFlags()...),
		Action: func(c *cli.Context) error {
			apps, _, s, err := jobsSession(c)
			if err != nil {
				return err
			}
			defer s.Close()
			entries, err := planJobs(c.Context, s, apps, nil)
			if err != nil {
				return err
			}
			return reportPlan(c, entries)
		},
	}
}

// planJobs diffs apps against the cluster; prune lists running jobs to stop.
func planJobs(ctx context.Context, s *session, apps []*jobspec.App, prune []string) ([]planEntry, error) {
	var entries []planEntry
	var proposed []control.Job
	for _, app := range apps {
		e := planEntry{Job: app.Name}
		cur, err := s.store.Job(ctx, app.Name)
		switch {
		case errors.Is(err, control.ErrJobNotFound):
			e.Action, e.Changes = "create", control.DiffSpecs(nil, app)
		case err != nil:
			return nil, err
		case cur.Stopped || !control.SameSpec(cur.Spec, app):
			e.Action, e.Version, e.Changes = "update", cur.Version, control.DiffSpecs(cur.Spec, app)
		default:
			e.Action, e.Version = "unchanged", cur.Version
		}
		entries = append(entries, e)
		proposed = append(proposed, control.Job{Name: app.Name, Version: cur.Version + 1, Spec: app})
	}
	for _, name := range prune {
		cur, err := s.store.Job(ctx, name)
		if err != nil {
			return nil, err
		}
		entries = append(entries, planEntry{Job: name, Action: "stop", Version: cur.Version})
	}
	plans, err := agent.DryRun(ctx, s.store, s.js, proposed, prune)
	if err != nil {
		return nil, err
	}
	for i := range entries {
		if p, ok := plans[entries[i].Job]; ok {
			entries[i].Placement, entries[i].Nodes = agent.ExplainLines(p), p.Nodes()
		}
	}
	return entries, nil
}

func reportPlan(c *cli.Context, entries []planEntry) error {
	changes := slices.ContainsFunc(entries, func(e planEntry) bool { return e.Action != "unchanged" })
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, map[string]any{"changes": changes, "jobs": entries}); err != nil {
			return err
		}
	} else {
		for _, e := range entries {
			mark := map[string]string{"create": "+", "update": "~", "stop": "-", "unchanged": " "}[e.Action]
			fmt.Fprintf(c.App.Writer, "%s job %q (%s)\n", mark, e.Job, e.Action)
			for _, ch := range e.Changes {
				fmt.Fprintln(c.App.Writer, "    "+ch.String())
			}
			if e.Action != "stop" {
				fmt.Fprintf(c.App.Writer, "    placement: %s\n", strings.Join(e.Nodes, ", "))
				for _, l := range e.Placement {
					fmt.Fprintln(c.App.Writer, "      "+l)
				}
			}
		}
	}
	if changes {
		return cli.Exit("", exitChanges)
	}
	return nil
}

func jobApplyCommand() *cli.Command {
	return &cli.Command{
		Name:            "apply",
		HideHelpCommand: true,
		Usage:           "sync the cluster with a directory of job files (GitOps)",
		ArgsUsage:       "DIR",
		UsageText: `gcl job apply jobs/
   gcl job apply -prune -detach jobs/`,
		Description: `Plans every job file in DIR, submits the jobs that changed and, with -prune,
stops running jobs that no file declares any more.

EXIT CODES:
   0  nothing to change
   1  invalid job file, unreachable cluster, a job that cannot run, or an error
   2  changes were applied (and, without -detach, run)`,
		Flags: append(append(variableFlags()[:2:2], clusterFlags()...),
			&cli.BoolFlag{Name: "prune", Usage: "stop jobs that are not in DIR"},
			&cli.BoolFlag{Name: "detach", Usage: "return once submitted"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: gcl job apply DIR", exitFailure)
			}
			if fi, err := os.Stat(c.Args().First()); err != nil || !fi.IsDir() {
				return cli.Exit(fmt.Sprintf("%s: not a directory", c.Args().First()), exitFailure)
			}
			apps, sources, s, err := jobsSession(c)
			if err != nil {
				return err
			}
			defer s.Close()
			var prune []string
			if c.Bool("prune") {
				running, err := s.store.Jobs(c.Context)
				if err != nil {
					return err
				}
				for _, j := range running {
					if !j.Stopped && !slices.ContainsFunc(apps, func(a *jobspec.App) bool { return a.Name == j.Name }) {
						prune = append(prune, j.Name)
					}
				}
			}
			entries, err := planJobs(c.Context, s, apps, prune)
			if err != nil {
				return err
			}
			var touched []control.Job
			for _, e := range entries {
				switch e.Action {
				case "create", "update":
					app := apps[slices.IndexFunc(apps, func(a *jobspec.App) bool { return a.Name == e.Job })]
					j, _, err := s.store.SubmitJob(c.Context, app, control.SubmitOptions{Source: sources[app.Source.Filename]})
					if err != nil {
						return cli.Exit(err.Error(), exitFailure)
					}
					touched = append(touched, j)
				case "stop":
					j, err := s.store.StopJob(c.Context, e.Job, false)
					if err != nil {
						return cli.Exit(err.Error(), exitFailure)
					}
					touched = append(touched, j)
				}
			}
			planErr := reportPlan(c, entries)
			if len(touched) > 0 && !c.Bool("detach") {
				// The plan was the JSON document; progress is text only.
				if err := waitForJobsOutput(c, s, touched, 5*time.Minute, false); err != nil {
					// Exit 2 means "changes applied" here: a job that
					// cannot run is an error.
					var exit cli.ExitCoder
					if errors.As(err, &exit) && exit.ExitCode() == exitChanges {
						return cli.Exit(exit.Error(), exitFailure)
					}
					return err
				}
			}
			return planErr
		},
	}
}
