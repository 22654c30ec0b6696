//go:build linux

package exec

import (
	"errors"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// defaultPath is the child's PATH when the agent has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// baseEnvKeys are the only variables taken from the agent's environment.
var baseEnvKeys = []string{"PATH", "HOME", "LANG"}

// childEnv builds the child's environment: the base keys from the agent's
// environment, HOME replaced by the target user's home when running as
// another user, then cfg.Env on top. It returns the list for exec and the
// PATH the command is looked up in (the child's own, so that cfg.Env can
// point at a private bin directory).
func childEnv(extra map[string]string, cred *credential) (env []string, path string) {
	m := make(map[string]string, len(baseEnvKeys)+len(extra))
	for _, k := range baseEnvKeys {
		if v, ok := os.LookupEnv(k); ok {
			m[k] = v
		}
	}
	if _, ok := m["PATH"]; !ok {
		m["PATH"] = defaultPath
	}
	if cred != nil && cred.sys != nil && cred.home != "" {
		m["HOME"] = cred.home
	}
	for k, v := range extra {
		m[k] = v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env = make([]string, 0, len(keys))
	for _, k := range keys {
		env = append(env, k+"="+m[k])
	}
	return env, m["PATH"]
}

// envKeys lists the keys of cfg.Env for the start log line: names only,
// values may be secrets.
func envKeys(extra map[string]string) []string {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lookPath resolves a command name like os/exec.LookPath, but in the given
// PATH rather than the agent's. Names containing a slash are returned as
// is. Errors are *os/exec.Error so that errors.Is(err, exec.ErrNotFound)
// works and the message matches what operators know from os/exec.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if !isExecutable(p) {
			continue
		}
		if !filepath.IsAbs(p) {
			// Same policy as os/exec since Go 1.19: a relative PATH entry
			// would make the binary depend on the working directory.
			return "", &osexec.Error{Name: name, Err: osexec.ErrDot}
		}
		return p, nil
	}
	return "", &osexec.Error{Name: name, Err: osexec.ErrNotFound}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	if err != nil {
		return false
	}
	m := fi.Mode()
	return !m.IsDir() && m&0o111 != 0
}

// isNotExist reports whether err means "no such file", for log readers
// racing a rotation.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
