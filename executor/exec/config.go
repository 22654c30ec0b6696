//go:build linux

package exec

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultKillTimeout = 10 * time.Second
	DefaultMaxLogBytes = 10 << 20
	DefaultMaxLogFiles = 3
)

// Restart modes.
const (
	// RestartModeFail gives up (state Failed) once Attempts restarts were
	// used within Interval.
	RestartModeFail = "fail"
	// RestartModeDelay waits until the Interval window has room again, then
	// keeps restarting.
	RestartModeDelay = "delay"
)

// Config describes one supervised process.
type Config struct {
	// Name identifies the instance in logs, e.g. "api".
	Name string
	// Command is an absolute path, a path relative to Dir, or a name looked
	// up in the child's PATH. The lookup happens at each start, not in New,
	// so a binary installed after New is found.
	Command string
	Args    []string
	// Env is added to a minimal base environment: PATH, HOME and LANG taken
	// from the agent's environment when set. The agent's whole environment
	// is deliberately not inherited: it may hold secrets (NATS tokens,
	// credentials) the app must not see. Env values are never logged.
	Env map[string]string
	// Dir is the working directory; "" means LogDir.
	Dir string
	// User runs the process as this user (name or numeric uid); "" means the
	// agent's own user. Anything else needs the agent to run as root.
	User string
	// KillSignal is sent to the process group by Stop, e.g. "SIGTERM",
	// "SIGINT", "SIGQUIT"; "" means SIGTERM.
	KillSignal string
	// KillTimeout is how long Stop waits after KillSignal before it SIGKILLs
	// the whole group; 0 means DefaultKillTimeout.
	KillTimeout time.Duration
	Restart     RestartPolicy
	// LogDir (required) receives stdout.log and stderr.log. It is created
	// (0750) if missing.
	LogDir string
	// MaxLogBytes is the size past which a log file is rotated; 0 means
	// DefaultMaxLogBytes.
	MaxLogBytes int64
	// MaxLogFiles is how many rotated files (stdout.log.1 ... .N) are kept;
	// 0 means DefaultMaxLogFiles.
	MaxLogFiles int
	// Logger receives the supervisor's own log lines; nil means slog.Default().
	Logger *slog.Logger
	// Deadline, when set, is the first deadline of Supervisor.HoldUntil:
	// the process is not started after it, and is SIGKILLed at it unless
	// HoldUntil moves it later. For a lease holder, the lease's deadline.
	Deadline time.Time
}

// RestartPolicy decides what happens when the process exits without Stop
// having been called. The zero value never restarts.
type RestartPolicy struct {
	// Attempts is how many restarts are allowed within any Interval-long
	// window. 0 disables restarts whatever the Mode.
	Attempts int
	// Interval is the window Attempts is counted over. Required when
	// Attempts > 0. A process that ran longer than Interval also resets the
	// exponential backoff.
	Interval time.Duration
	// Delay is the base delay before a restart. It doubles with each
	// consecutive failure, capped at min(Interval, 30s) (but never below
	// Delay itself), plus up to 10% jitter so that many instances crashing
	// together do not restart in lockstep.
	Delay time.Duration
	// Mode is RestartModeFail ("" too) or RestartModeDelay.
	Mode string
}

// maxBackoff caps the exponential restart backoff.
const maxBackoff = 30 * time.Second

// credential is the resolved Config.User.
type credential struct {
	name string
	uid  uint32
	gid  uint32
	home string
	// sys is nil when the user is the agent's own: then no setuid/setgroups
	// happens at fork, which an unprivileged agent could not do anyway.
	sys *syscall.Credential
}

// normalize validates cfg and fills in defaults.
func (cfg *Config) normalize() (syscall.Signal, *credential, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(cfg.Command) == "" {
		return 0, nil, invalid("command must not be empty")
	}
	if cfg.LogDir == "" {
		return 0, nil, invalid("log dir must not be empty")
	}
	sig, err := parseSignal(cfg.KillSignal)
	if err != nil {
		return 0, nil, err
	}
	if cfg.KillTimeout < 0 || cfg.MaxLogBytes < 0 || cfg.MaxLogFiles < 0 {
		return 0, nil, invalid("kill timeout, max log bytes and max log files must not be negative")
	}
	if cfg.KillTimeout == 0 {
		cfg.KillTimeout = DefaultKillTimeout
	}
	if cfg.MaxLogBytes == 0 {
		cfg.MaxLogBytes = DefaultMaxLogBytes
	}
	if cfg.MaxLogFiles == 0 {
		cfg.MaxLogFiles = DefaultMaxLogFiles
	}
	r := &cfg.Restart
	if r.Attempts < 0 || r.Interval < 0 || r.Delay < 0 {
		return 0, nil, invalid("restart attempts, interval and delay must not be negative")
	}
	if r.Attempts > 0 && r.Interval == 0 {
		// A zero window would make every restart the first in its window:
		// unlimited restarts, which is not what a non-zero Attempts asks for.
		return 0, nil, invalid("restart interval must be set when attempts > 0")
	}
	switch r.Mode {
	case "":
		r.Mode = RestartModeFail
	case RestartModeFail, RestartModeDelay:
	default:
		return 0, nil, invalid("restart mode %q (want %q or %q)", r.Mode, RestartModeFail, RestartModeDelay)
	}
	for k, v := range cfg.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			// The value is not quoted: it may be a secret.
			return 0, nil, invalid("env key %q is not usable", k)
		}
	}
	var cred *credential
	if cfg.User != "" {
		if cred, err = lookupUser(cfg.User); err != nil {
			return 0, nil, err
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Copy the caller's slices and maps: they may be reused after New.
	cfg.Args = append([]string(nil), cfg.Args...)
	env := make(map[string]string, len(cfg.Env))
	for k, v := range cfg.Env {
		env[k] = v
	}
	cfg.Env = env
	return sig, cred, nil
}

// lookupUser resolves a user name or numeric uid. The user must exist in
// the user database: a bare uid would leave us guessing its group and home.
func lookupUser(name string) (*credential, error) {
	var u *user.User
	var err error
	if _, numErr := strconv.ParseUint(name, 10, 32); numErr == nil {
		u, err = user.LookupId(name)
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrUnknownUser, name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%w: %q has non-numeric uid/gid %q/%q", ErrUnknownUser, name, u.Uid, u.Gid)
	}
	c := &credential{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}
	if int(uid) == os.Getuid() && int(gid) == os.Getgid() {
		return c, nil
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(g) != c.gid {
				groups = append(groups, uint32(g))
			}
		}
	}
	// NoSetGroups stays false: the child then calls setgroups with exactly
	// these (possibly no) groups instead of keeping the agent's, i.e. root's.
	c.sys = &syscall.Credential{Uid: c.uid, Gid: c.gid, Groups: groups}
	return c, nil
}
