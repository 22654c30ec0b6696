package state

import (
	"fmt"
	"net/url"
	"strings"
)

// Every name that becomes part of a NATS subject or a JetStream bucket is
// checked here, once, where it enters the system. Buckets allow [A-Za-z0-9_-];
// subject tokens must not hold '.', '*', '>' or whitespace. We take the
// intersection so a name is valid everywhere it is used.

// MaxNameLen bounds names so derived bucket names stay well inside limits.
const MaxNameLen = 64

// ValidateName checks a platform, node, app, lock or service name. kind is
// used in the message ("app name", "node ID").
func ValidateName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s must not be empty", kind)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%s %q is longer than %d characters", kind, name, MaxNameLen)
	}
	for i, r := range name {
		ok := r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("%s %q: character %q at position %d is not allowed (use letters, digits, '-' and '_')", kind, name, r, i)
		}
	}
	return nil
}

// ValidateKey checks a user-supplied KV key: NATS KV keys allow
// [-/_=.A-Za-z0-9], must not start or end with '.', nor hold empty tokens.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("key must not be empty")
	}
	if strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
		return fmt.Errorf("key %q: must not start or end with '.' or hold '..'", key)
	}
	for i, r := range key {
		ok := strings.ContainsRune("-/_=.", r) || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("key %q: character %q at position %d is not allowed (use letters, digits and - / _ = .)", key, r, i)
		}
	}
	return nil
}

// RedactURL hides passwords and tokens in NATS URLs so they can be logged.
func RedactURL(raw string) string {
	return rewriteUserinfo(raw, func(u *url.URL) { u.User = url.User("REDACTED") })
}

// StripCredentials removes user, password and token from NATS URLs.
func StripCredentials(raw string) string {
	return rewriteUserinfo(raw, func(u *url.URL) { u.User = nil })
}

// rewriteUserinfo applies change to every URL of a comma-separated list
// that carries credentials.
func rewriteUserinfo(raw string, change func(*url.URL)) string {
	var out []string
	for _, part := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil || u.User == nil {
			out = append(out, part)
			continue
		}
		change(u)
		out = append(out, u.String())
	}
	return strings.Join(out, ",")
}
