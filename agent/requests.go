package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	cluster "github.com/ozanturksever/go-cluster"
	"github.com/ozanturksever/go-cluster/executor/exec"
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
	// Follow, with Inbox, streams new output to Inbox for FollowFor.
	Follow    bool          `json:"follow,omitempty"`
	Inbox     string        `json:"inbox,omitempty"`
	FollowFor time.Duration `json:"follow_for,omitempty"`
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

func (a *Agent) handleLogs(m *nats.Msg) {
	var req LogsRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return
	}
	if req.Stream == "" {
		req.Stream = "stdout"
	}
	if req.Lines == 0 {
		req.Lines = 50
	}
	dir := filepath.Join(a.cfg.DataDir, "logs", req.App)
	reply := LogsReply{Node: a.cfg.Node}
	var err error
	if req.Lines > 0 { // negative: no history, only follow
		reply.Lines, err = exec.Tail(dir, req.Stream, req.Lines)
		if err != nil {
			reply.Error = err.Error()
		}
	}
	b, _ := json.Marshal(reply)
	_ = m.Respond(b)
	if req.Follow && req.Inbox != "" && err == nil {
		d := req.FollowFor
		if d <= 0 || d > time.Minute {
			d = 10 * time.Second
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			_ = exec.Follow(ctx, dir, req.Stream, -1, publisher{a.nc, req.Inbox})
		}()
	}
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
