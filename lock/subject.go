package lock

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// resolveSubject finds the subject that writes to the lock's key must be
// published on, and checks that the bucket allows per-message TTLs.
//
// Renewals are raw JetStream publishes (the KV API has no compare-and-set
// write with a TTL), so they must reproduce the subject the KV client itself
// writes to: "$KV.<bucket>." for an ordinary bucket, the origin bucket's
// subject for a mirror, and with the JetStream API prefix in front when the
// context uses a domain or custom prefix.
func (l *Lock) resolveSubject(ctx context.Context) (string, error) {
	st, err := l.kv.Status(ctx)
	if err != nil {
		return "", fmt.Errorf("lock %q: bucket %q status: %w", l.name, l.kv.Bucket(), err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		// Not the stock implementation: assume an ordinary bucket.
		return jsPrefix(l.js) + "$KV." + l.kv.Bucket() + "." + l.name, nil
	}
	cfg := bs.StreamInfo().Config
	if !cfg.AllowMsgTTL {
		return "", fmt.Errorf("lock %q: bucket %q does not allow per-message TTLs; create it with lock.BucketConfig (LimitMarkerTTL set)", l.name, l.kv.Bucket())
	}
	return putPrefix(l.js, cfg, l.kv.Bucket()) + l.name, nil
}

// putPrefix mirrors how the KV client builds put subjects.
func putPrefix(js jetstream.JetStream, cfg jetstream.StreamConfig, bucket string) string {
	if m := cfg.Mirror; m != nil {
		origin := strings.TrimPrefix(m.Name, "KV_")
		if m.External != nil && m.External.APIPrefix != "" {
			return m.External.APIPrefix + ".$KV." + origin + "."
		}
		return jsPrefix(js) + "$KV." + origin + "."
	}
	return jsPrefix(js) + "$KV." + bucket + "."
}

// jsPrefix is the API prefix the KV client puts in front of writes: none
// for the default "$JS.API.", otherwise the domain or custom prefix.
func jsPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "" && o.APIPrefix != jetstream.DefaultAPIPrefix:
		if !strings.HasSuffix(o.APIPrefix, ".") {
			return o.APIPrefix + "."
		}
		return o.APIPrefix
	default:
		return ""
	}
}
