package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/urfave/cli/v2"
)

func fmtCommand() *cli.Command {
	return &cli.Command{
		Name:            "fmt",
		HideHelpCommand: true,
		Usage:           "rewrite job files in the canonical layout",
		ArgsUsage:       "[PATH...]",
		UsageText: `gcl fmt [-check] [-write] [-json] [PATH...]

   gcl fmt jobs/database.hcl          # print the formatted file
   gcl fmt -write jobs                # rewrite every jobs/*.hcl that changes
   gcl fmt -check jobs                # in CI: fail if anything is unformatted`,
		Description: `Formats HCL job files the one canonical way: two-space indentation, aligned
equals signs, normalized spacing. A directory stands for the *.hcl files
directly in it; no PATH means the current directory. Files with syntax errors
are reported and left alone.

Without -check or -write, a single file is printed formatted on stdout, and
for several files the names of those that would change are listed. -check
lists the files that would change and fails if there are any. -write
replaces each file that changes (through a temporary file and a rename, so
no reader sees half a file) and lists them. -json prints
{"files": [{"path", "changed", "written"}], "diagnostics": [...]} instead.

` + exitCodesHelp,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "check", Usage: "fail when a file is not formatted, and list it"},
			&cli.BoolFlag{Name: "write", Usage: "rewrite files in place"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON on stdout"},
		},
		Action: runFmt,
	}
}

// fmtFile is one file's entry in the -json output.
type fmtFile struct {
	Path    string `json:"path"`
	Changed bool   `json:"changed"`
	Written bool   `json:"written"`
}

type fmtOutput struct {
	Files       []fmtFile                `json:"files"`
	Diagnostics []jobspec.JSONDiagnostic `json:"diagnostics"`
}

func runFmt(c *cli.Context) error {
	check, write, asJSON := c.Bool("check"), c.Bool("write"), c.Bool("json")
	if check && write {
		return cli.Exit("use either -check or -write", exitFailure)
	}
	args := c.Args().Slice()
	if len(args) == 0 {
		args = []string{"."}
	}
	paths, err := expandPaths(args, isHCLFile)
	if err != nil {
		return cli.Exit(err, exitFailure)
	}
	// A single file named explicitly is printed; anything else is listed.
	printOne := !check && !write && !asJSON && len(args) == 1 && len(paths) == 1 && paths[0] == args[0]

	files := map[string]*hcl.File{}
	var diags hcl.Diagnostics
	out := fmtOutput{Files: []fmtFile{}}
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			return cli.Exit(fmt.Errorf("reading %s: %w", path, err), exitFailure)
		}
		files[path] = &hcl.File{Bytes: src}
		formatted, more := jobspec.Format(path, src)
		diags = append(diags, more...)
		if more.HasErrors() {
			continue
		}
		if printOne {
			if _, err := c.App.Writer.Write(formatted); err != nil {
				return fmt.Errorf("writing %s: %w", path, err)
			}
			continue
		}
		entry := fmtFile{Path: path, Changed: !bytes.Equal(src, formatted)}
		if entry.Changed && write {
			info, err := os.Stat(path)
			if err != nil {
				return cli.Exit(fmt.Errorf("reading %s: %w", path, err), exitFailure)
			}
			if err := writeFileAtomic(path, formatted, info.Mode().Perm()); err != nil {
				return cli.Exit(err, exitFailure)
			}
			entry.Written = true
		}
		out.Files = append(out.Files, entry)
		if entry.Changed && !asJSON {
			fmt.Fprintln(c.App.Writer, path)
		}
	}

	if asJSON {
		out.Diagnostics = jobspec.JSONDiagnostics(files, diags)
		if err := writeJSON(c.App.Writer, out); err != nil {
			return err
		}
	} else if err := writeDiagnostics(c.App.ErrWriter, files, diags); err != nil {
		return err
	}
	if diags.HasErrors() || (check && anyChanged(out.Files)) {
		return errFailed
	}
	return nil
}

func anyChanged(files []fmtFile) bool {
	for _, f := range files {
		if f.Changed {
			return true
		}
	}
	return false
}
