package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/urfave/cli/v2"
)

func jobCommand() *cli.Command {
	return &cli.Command{
		Name:  "job",
		Usage: "run, plan, inspect and stop jobs",
		Description: `A job file declares one or more apps:

   app "database" {
     mode = "singleton"
     vip  = "10.0.1.100/24"
     backend "systemd" { unit = "postgresql.service" }
   }

A directory argument stands for the *.hcl and *.hcl.json files in it.`,
		Subcommands: []*cli.Command{
			jobRunCommand(),
			jobPlanCommand(),
			jobStatusCommand(),
			jobStopCommand(),
			jobHistoryCommand(),
			jobRevertCommand(),
			jobApplyCommand(),
			jobValidateCommand(),
			jobInspectCommand(),
		},
	}
}

// variableFlags are the flags of every command that evaluates job files.
func variableFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{
			Name:  "var",
			Usage: "set a variable, as `NAME=VALUE` (repeatable; overrides -var-file and GCL_VAR_NAME)",
		},
		&cli.StringSliceFlag{
			Name:  "var-file",
			Usage: "read variables from `FILE` (repeatable; a later file overrides an earlier one)",
		},
		&cli.BoolFlag{
			Name:  "json",
			Usage: "print the result as JSON on stdout",
		},
	}
}

const variablesHelp = `Variables take their value from, lowest precedence first: the default in the
variable block, the environment variable GCL_VAR_NAME, -var-file files (in
order), -var flags (the last one for a name wins). file(), fileexists() and
templatefile() read paths relative to the current directory.`

func jobValidateCommand() *cli.Command {
	return &cli.Command{
		Name:            "validate",
		HideHelpCommand: true,
		Usage:           "check job files without contacting a cluster",
		ArgsUsage:       "FILE...",
		UsageText: `gcl job validate [-var NAME=VALUE]... [-var-file FILE]... [-json] FILE...

   gcl job validate examples/jobs/database.hcl
   gcl job validate examples/jobs
   gcl job validate -var env=staging -var-file staging.hcl jobs/reports.hcl
   gcl job validate -json jobs/ | jq '.diagnostics[] | select(.severity == "error")'`,
		Description: `Parses the files together, evaluates variables, locals and functions, and
checks every rule that needs no cluster: the schema, values, durations,
addresses, placement rules, and app names unique across all files. All
problems are reported at once with file:line:col and the source marked.
Warnings do not make a file invalid.

` + variablesHelp + `

` + exitCodesHelp,
		Flags: append(variableFlags(), clusterFlagsWithoutJSON()...),
		Action: func(c *cli.Context) error {
			if c.NArg() == 1 && looksLikeJobName(c.Args().First()) {
				return inspectRunningJob(c, c.Args().First())
			}
			result, diags, err := parseJobs(c)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				out := validateOutput{
					Valid:       !diags.HasErrors(),
					Apps:        []string{},
					Diagnostics: jobspec.JSONDiagnostics(result.Files, diags),
				}
				for _, app := range result.Apps {
					out.Apps = append(out.Apps, app.Name)
				}
				if err := writeJSON(c.App.Writer, out); err != nil {
					return err
				}
			} else {
				if err := writeDiagnostics(c.App.ErrWriter, result.Files, diags); err != nil {
					return err
				}
				if !diags.HasErrors() {
					fmt.Fprintf(c.App.Writer, "Valid: %s (%s).\n", appList(result.Apps), countSummary(diags))
				} else {
					fmt.Fprintf(c.App.ErrWriter, "Invalid: %s.\n", countSummary(diags))
				}
			}
			if diags.HasErrors() {
				return errFailed
			}
			return nil
		},
	}
}

// validateOutput is what `gcl job validate -json` prints.
type validateOutput struct {
	Valid bool `json:"valid"`
	// Apps names the apps declared, when valid.
	Apps        []string                 `json:"apps"`
	Diagnostics []jobspec.JSONDiagnostic `json:"diagnostics"`
}

func jobInspectCommand() *cli.Command {
	return &cli.Command{
		Name:            "inspect",
		HideHelpCommand: true,
		Usage:           "show job files as the cluster would see them",
		ArgsUsage:       "FILE...",
		UsageText: `gcl job inspect [-var NAME=VALUE]... [-var-file FILE]... [-json] FILE...
   gcl job inspect [-json] JOB

   gcl job inspect examples/jobs/variables.hcl
   gcl job inspect api
   gcl job inspect -var env=dev examples/jobs/variables.hcl -json`,
		Description: `With a job name that is not a file, shows the running version of that job
as the cluster stores it. With files, renders the decoded apps offline: variables, locals and functions evaluated,
defaults filled in. The text form is a job file in canonical layout that
parses to the same apps; -json prints the decoded structures, with durations
in nanoseconds. Diagnostics go to stderr (in the JSON document with -json).

` + variablesHelp + `

` + exitCodesHelp,
		Flags: append(variableFlags(), clusterFlagsWithoutJSON()...),
		Action: func(c *cli.Context) error {
			if c.NArg() == 1 && looksLikeJobName(c.Args().First()) {
				return inspectRunningJob(c, c.Args().First())
			}
			result, diags, err := parseJobs(c)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				out := inspectOutput{
					Apps:        result.Apps,
					Diagnostics: jobspec.JSONDiagnostics(result.Files, diags),
				}
				if err := writeJSON(c.App.Writer, out); err != nil {
					return err
				}
			} else {
				if err := writeDiagnostics(c.App.ErrWriter, result.Files, diags); err != nil {
					return err
				}
				if !diags.HasErrors() {
					if _, err := c.App.Writer.Write(jobspec.Render(result.Apps)); err != nil {
						return fmt.Errorf("writing apps: %w", err)
					}
				}
			}
			if diags.HasErrors() {
				return errFailed
			}
			return nil
		},
	}
}

// inspectOutput is what `gcl job inspect -json` prints; Apps is null when
// the files are invalid.
type inspectOutput struct {
	Apps        []*jobspec.App           `json:"apps"`
	Diagnostics []jobspec.JSONDiagnostic `json:"diagnostics"`
}

// parseJobs parses the job files named on the command line with the
// variable flags. An error is returned for bad usage; problems in the files
// are in the diagnostics.
func parseJobs(c *cli.Context) (*jobspec.Result, hcl.Diagnostics, error) {
	if c.NArg() == 0 {
		return nil, nil, cli.Exit("no job files given; try: gcl job "+c.Command.Name+" FILE...", exitFailure)
	}
	paths, err := expandPaths(c.Args().Slice(), isJobFile)
	if err != nil {
		return nil, nil, cli.Exit(err, exitFailure)
	}
	if len(paths) == 0 {
		return nil, nil, cli.Exit("no *.hcl or *.hcl.json files in "+strings.Join(c.Args().Slice(), ", "), exitFailure)
	}
	vars, err := parseVarFlags(c.StringSlice("var"))
	if err != nil {
		return nil, nil, cli.Exit(err, exitFailure)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, nil, fmt.Errorf("finding the working directory: %w", err)
	}
	result, diags := jobspec.ParseFiles(paths,
		jobspec.WithVars(vars),
		jobspec.WithVarFiles(c.StringSlice("var-file")...),
		jobspec.WithLookupEnv(os.LookupEnv),
		jobspec.WithFileFunctions(cwd),
	)
	return result, diags, nil
}

// parseVarFlags turns -var NAME=VALUE flags into a map, the last value for
// a name winning.
func parseVarFlags(flags []string) (map[string]string, error) {
	vars := make(map[string]string, len(flags))
	for _, flag := range flags {
		name, value, ok := strings.Cut(flag, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("-var %q: expected NAME=VALUE", flag)
		}
		vars[name] = value
	}
	return vars, nil
}

// appList names apps for the closing line of validate.
func appList(apps []*jobspec.App) string {
	if len(apps) == 0 {
		return "no apps"
	}
	names := make([]string, len(apps))
	for i, app := range apps {
		names[i] = app.Name
	}
	return plural(len(apps), "app") + " (" + strings.Join(names, ", ") + ")"
}

// looksLikeJobName tells `job inspect JOB` from `job inspect FILE`: a name
// that is no file and has no path or job file look (a mistyped path must
// get "no such file", not a cluster lookup).
func looksLikeJobName(arg string) bool {
	if _, err := os.Stat(arg); err == nil {
		return false
	}
	return !strings.ContainsAny(arg, `/\.`)
}

// inspectRunningJob prints the current version of a submitted job.
func inspectRunningJob(c *cli.Context, name string) error {
	s, err := connectFromFlags(c)
	if err != nil {
		return err
	}
	defer s.Close()
	job, err := s.store.Job(c.Context, name)
	if err != nil {
		return cli.Exit(err.Error(), exitFailure)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, job)
	}
	fmt.Fprintf(c.App.Writer, "# job %q version %d, submitted %s\n", job.Name, job.Version, job.SubmittedAt.Local().Format("2006-01-02 15:04:05"))
	_, err = c.App.Writer.Write(jobspec.Render([]*jobspec.App{job.Spec}))
	return err
}
