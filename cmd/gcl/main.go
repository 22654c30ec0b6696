// Command gcl is the operator's tool for go-cluster: it checks, formats and
// (later) runs HCL job files that make apps highly available on NATS
// JetStream.
//
// The command itself is a thin shell: flags, output and exit codes. What a
// job file means lives in package jobspec.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

// Exit codes. Every command uses these two, so scripts and CI can rely on
// them; they are listed in the help.
const (
	exitOK = 0
	// exitFailure means invalid input, a failed check or an error.
	exitFailure = 1
)

const exitCodesHelp = `EXIT CODES:
   0  success (warnings may have been printed)
   1  invalid job file, a failed check, bad usage, an unreachable cluster or any other error
   2  job plan / job apply: there are (were) changes; job run: a job cannot be placed or its
      instances failed (see each command's help)`

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes one gcl invocation and returns its exit code. It writes only
// to stdout and stderr, so tests run it in-process.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(permuteFlags(app.Commands, args))
	if err == nil {
		return exitOK
	}
	var exitErr cli.ExitCoder
	if errors.As(err, &exitErr) {
		if msg := exitErr.Error(); msg != "" {
			fmt.Fprintln(stderr, "Error:", msg)
		}
		return exitErr.ExitCode()
	}
	fmt.Fprintln(stderr, "Error:", err)
	return exitFailure
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "gcl",
		Usage: "make apps highly available on NATS JetStream",
		UsageText: `gcl COMMAND [OPTIONS] [ARGUMENTS...]

   gcl agent -dev
   gcl job run examples/jobs/api.hcl
   gcl job status api
   gcl job validate examples/jobs/database.hcl
   gcl snapshot list database
   gcl fmt -check examples/jobs`,
		Description: exitCodesHelp,
		Commands:    commands(),
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cli.Exit(fmt.Sprintf("unknown command %q; see gcl --help", c.Args().First()), exitFailure)
			}
			return cli.ShowAppHelp(c)
		},
		Writer:    stdout,
		ErrWriter: stderr,
		// run turns errors into exit codes; the default handler would call
		// os.Exit from inside the library, ending tests with it.
		ExitErrHandler: func(*cli.Context, error) {},
		// -var tags=a,b is one value, not two.
		DisableSliceFlagSeparator: true,
		HideVersion:               true,
	}
}

// commands lists the command groups; each lives in its own file.
func commands() []*cli.Command {
	return []*cli.Command{
		agentCommand(),
		jobCommand(),
		nodeCommand(),
		appCommand(),
		stepdownCommand(),
		snapshotCommand(),
		fmtCommand(),
	}
}
