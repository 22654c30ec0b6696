package jobspec

import "strings"

// Option configures Parse and ParseFiles.
type Option func(*config)

// config is what the options set. The zero value is the library default: no
// variable values from outside, no environment, no file access.
type config struct {
	// vars are -var values, already reduced to the last value per name.
	vars map[string]string
	// varFiles are read in order; a later file overrides an earlier one.
	varFiles []string
	// lookupEnv reads GCL_VAR_<name>; nil means the environment is ignored.
	lookupEnv func(string) (string, bool)
	// fileFunctions enables file(), fileexists() and templatefile().
	fileFunctions bool
	// fileBaseDir is what their relative paths are resolved against.
	fileBaseDir string
}

// WithVars sets variable values as given on a command line (-var k=v). The
// strings are converted to each variable's declared type: primitive and
// untyped variables take the string as it is, collection and object types
// parse it as an HCL expression such as ["a", "b"].
func WithVars(vars map[string]string) Option {
	return func(c *config) {
		if c.vars == nil {
			c.vars = make(map[string]string, len(vars))
		}
		for name, value := range vars {
			c.vars[name] = value
		}
	}
}

// WithVarFiles adds variable files (-var-file): HCL, or JSON when the name
// ends in ".json", holding `name = value` attributes with literal values.
// Later files override earlier ones.
func WithVarFiles(paths ...string) Option {
	return func(c *config) {
		c.varFiles = append(c.varFiles, paths...)
	}
}

// WithLookupEnv lets variables take values from GCL_VAR_<name> environment
// variables, read through lookup (os.LookupEnv in the CLI). Without this
// option the environment is not consulted, which keeps library callers and
// tests independent of the process environment.
func WithLookupEnv(lookup func(key string) (string, bool)) Option {
	return func(c *config) {
		c.lookupEnv = lookup
	}
}

// WithEnviron is WithLookupEnv over a list of "KEY=value" entries, as
// returned by os.Environ.
func WithEnviron(environ []string) Option {
	env := make(map[string]string, len(environ))
	for _, entry := range environ {
		if key, value, ok := strings.Cut(entry, "="); ok {
			env[key] = value
		}
	}
	return WithLookupEnv(func(key string) (string, bool) {
		value, ok := env[key]
		return value, ok
	})
}

// WithFileFunctions enables file(path), fileexists(path) and
// templatefile(path, vars), with relative paths resolved against baseDir.
// The library leaves them disabled so that parsing job text never touches
// the file system unless the caller asks for it; the gcl CLI enables them
// with its working directory, the same base its FILE arguments use.
func WithFileFunctions(baseDir string) Option {
	return func(c *config) {
		c.fileFunctions = true
		c.fileBaseDir = baseDir
	}
}
