package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	cluster "github.com/ozanturksever/go-cluster"
	"github.com/ozanturksever/go-cluster/executor/exec"
	"github.com/ozanturksever/go-cluster/state"
)

// Requests the CLI sends to agents over NATS (where it is authenticated,
// unlike the read-only HTTP API).

// AppRequest names an app.
type AppRequest struct {
	App string `json:"app"`
}

// AppReply is an agent's answer about an app.
type AppReply struct {
	Node  string `json:"node"`
	Error string `json:"error,omitempty"`
	// Rebalance only.
	Version uint64 `json:"version,omitempty"`
	Moved   int    `json:"moved,omitempty"`
	Members int    `json:"members,omitempty"`
}

// LogsRequest asks an agent for an instance's output.
type LogsRequest struct {
	App    string `json:"app"`
	Stream string `json:"stream"` // stdout or stderr
	Lines  int    `json:"lines"`
	// Follow, with Inbox (a _INBOX. subject), streams new output to Inbox
	// for as long as the same request is sent again every few seconds.
	Follow bool   `json:"follow,omitempty"`
	Inbox  string `json:"inbox,omitempty"`
}

// LogsReply carries the last lines of an instance's output.
type LogsReply struct {
	Node  string   `json:"node"`
	Lines []string `json:"lines"`
	Error string   `json:"error,omitempty"`
}

func (a *Agent) serveRequests() error {
	l := a.store.Layout()
	subs := []struct {
		subject, queue string
		h              nats.MsgHandler
	}{
		{l.AgentsSubject("stepdown"), "", a.handleStepDown},
		{l.AgentsSubject("rebalance"), "rebalance", a.handleRebalance},
		{l.AgentCallSubject(a.cfg.Node, "logs"), "", a.handleLogs},
	}
	for _, s := range subs {
		var err error
		if s.queue != "" {
			_, err = a.nc.QueueSubscribe(s.subject, s.queue, s.h)
		} else {
			_, err = a.nc.Subscribe(s.subject, s.h)
		}
		if err != nil {
			return fmt.Errorf("agent: subscribe %s: %w", s.subject, err)
		}
	}
	return nil
}

func (a *Agent) instance(app string) *instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.instances[app]
}

// handleStepDown answers only on the node that leads the app, so the CLI
// gets exactly one answer (or none: no leader).
func (a *Agent) handleStepDown(m *nats.Msg) {
	var req AppRequest
	if json.Unmarshal(m.Data, &req) != nil {
		return
	}
	var app *cluster.Application
	if in := a.instance(req.App); in != nil {
		app = in.app
	}
	if req.App == SchedulerApp {
		app = a.scheduler
	}
	if app == nil || !app.Election().IsLeader() {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		reply := AppReply{Node: a.cfg.Node}
		if err := app.Election().StepDown(ctx); err != nil {
			reply.Error = err.Error()
		}
		b, _ := json.Marshal(reply)
		_ = m.Respond(b)
	}()
}

func (a *Agent) handleRebalance(m *nats.Msg) {
	var req AppRequest
	if json.Unmarshal(m.Data, &req) != nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		reply := AppReply{Node: a.cfg.Node}
		res, err := a.platform.Rebalance(ctx, req.App)
		if err != nil {
			reply.Error = err.Error()
		} else {
			reply.Version, reply.Moved, reply.Members = res.Version, res.Moved, len(res.Members)
		}
		b, _ := json.Marshal(reply)
		_ = m.Respond(b)
	}()
}

// Bounds of a logs request.
const (
	maxLogLines = 10_000
	// followIdle is how long a follow outlives the client's last request:
	// the CLI renews every few seconds, and a follow whose client went
	// away (killed, disconnected) ends by itself.
	followIdle = 15 * time.Second
)

func (a *Agent) handleLogs(m *nats.Msg) {
	var req LogsRequest
	reply := LogsReply{Node: a.cfg.Node}
	respond := func() {
		b, _ := json.Marshal(reply)
		_ = m.Respond(b)
	}
	if err := json.Unmarshal(m.Data, &req); err != nil {
		reply.Error = "bad request: " + err.Error()
		respond()
		return
	}
	// The app name becomes a path: only a valid name may.
	if err := state.ValidateName("app name", req.App); err != nil {
		reply.Error = err.Error()
		respond()
		return
	}
	if req.Stream == "" {
		req.Stream = "stdout"
	}
	if req.Lines == 0 {
		req.Lines = 50
	}
	req.Lines = min(req.Lines, maxLogLines)
	if req.Follow && !strings.HasPrefix(req.Inbox, nats.InboxPrefix) {
		reply.Error = "follow needs an inbox subject (" + nats.InboxPrefix + "...)"
		respond()
		return
	}
	dir := filepath.Join(a.cfg.DataDir, "logs", req.App)
	if req.Lines > 0 { // negative: no history, only follow
		lines, err := exec.Tail(dir, req.Stream, req.Lines)
		if err != nil {
			reply.Error = err.Error()
			respond()
			return
		}
		reply.Lines = lines
	}
	respond()
	if req.Follow {
		a.follow(dir, req.Stream, req.Inbox)
	}
}

// follow streams new output of a log to inbox until the client stops
// renewing (see followIdle). A renewal of a running follow only extends it.
func (a *Agent) follow(dir, stream, inbox string) {
	a.followMu.Lock()
	defer a.followMu.Unlock()
	if f, ok := a.follows[inbox]; ok {
		f.Store(time.Now().Add(followIdle).UnixNano())
		return
	}
	until := new(atomic.Int64)
	until.Store(time.Now().Add(followIdle).UnixNano())
	a.follows[inbox] = until
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for range tick.C {
			if time.Now().UnixNano() > until.Load() {
				break
			}
		}
		cancel()
	}()
	go func() {
		defer func() {
			a.followMu.Lock()
			delete(a.follows, inbox)
			a.followMu.Unlock()
		}()
		_ = exec.Follow(ctx, dir, stream, -1, publisher{a.nc, inbox})
	}()
}

// publisher sends what is written to it as NATS messages.
type publisher struct {
	nc      *nats.Conn
	subject string
}

func (p publisher) Write(b []byte) (int, error) {
	if err := p.nc.Publish(p.subject, append([]byte(nil), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

var _ io.Writer = publisher{}
