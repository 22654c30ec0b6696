package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// permuteFlags moves the flags of the invoked command in front of its
// positional arguments, so `gcl job inspect app.hcl -json` works like
// `gcl job inspect -json app.hcl`. urfave/cli v2 stops reading flags at the
// first positional argument, as Go's flag package does, which surprises
// people who add a flag at the end of a command line. Everything after "--"
// stays positional.
func permuteFlags(commands []*cli.Command, args []string) []string {
	if len(args) == 0 {
		return args
	}
	// Find the invoked command: the longest chain of command names.
	i := 1
	var cmd *cli.Command
	for i < len(args) {
		next := findCommand(commands, args[i])
		if next == nil {
			break
		}
		cmd, commands = next, next.Subcommands
		i++
	}
	if cmd == nil {
		return args
	}
	out := append([]string{}, args[:i]...)
	var positional []string
	for ; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case len(arg) > 1 && arg[0] == '-':
			out = append(out, arg)
			if !strings.Contains(arg, "=") && takesValue(cmd, strings.TrimLeft(arg, "-")) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		default:
			positional = append(positional, arg)
		}
	}
	for _, arg := range positional {
		if strings.HasPrefix(arg, "-") {
			// Keeps a positional argument that looks like a flag positional.
			out = append(out, "--")
			break
		}
	}
	return append(out, positional...)
}

func findCommand(commands []*cli.Command, name string) *cli.Command {
	for _, c := range commands {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the command's flag of that name consumes the
// next argument. Unknown names (such as -h) are left for the parser to
// judge, without swallowing an argument.
func takesValue(cmd *cli.Command, name string) bool {
	for _, flag := range cmd.Flags {
		for _, n := range flag.Names() {
			if n != name {
				continue
			}
			if valued, ok := flag.(cli.DocGenerationFlag); ok {
				return valued.TakesValue()
			}
			return false
		}
	}
	return false
}
