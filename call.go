package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ozanturksever/go-cluster/placement"
)

// Handler answers a call. Handlers run concurrently, one goroutine per call;
// ctx ends at the caller's deadline (as far as it is known) or when the
// instance stops.
type Handler func(ctx context.Context, request []byte) ([]byte, error)

// Headers of the call protocol.
const (
	hdrMethod   = "Gcl-Method"
	hdrError    = "Gcl-Error"
	hdrNode     = "Gcl-Node"
	hdrDeadline = "Gcl-Deadline" // caller's deadline, Unix nanoseconds
	// A ForKey call names the key's partition; an instance that does not
	// own it answers with hdrNotOwner instead of running the handler, and
	// the caller tries the owner of the newest assignment.
	hdrPartition = "Gcl-Partition"
	hdrNotOwner  = "Gcl-Not-Owner"
)

// DefaultCallTimeout bounds a call whose ctx has no deadline.
const DefaultCallTimeout = 10 * time.Second

// Handle registers h for method. Registering the same method again replaces it.
func (a *Application) Handle(method string, h Handler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.handlers[method] = h
}

func (a *Application) handler(method string) Handler {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.handlers[method]
}

// callSubs are the subscriptions an app's instance answers calls on.
type callSubs struct {
	mu     sync.Mutex
	node   *nats.Subscription
	active []*nats.Subscription
}

func (p *Platform) callSubsOf(a *Application) *callSubs {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.calls == nil {
		a.calls = &callSubs{}
	}
	return a.calls
}

// serveNodeCalls answers ToNode calls for as long as the app is registered,
// active or not: a standby can be asked directly.
func (p *Platform) serveNodeCalls(a *Application) error {
	cs := p.callSubsOf(a)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.node != nil {
		return nil
	}
	sub, err := p.nc.Subscribe(p.layout.CallNodeSubject(a.name, p.node), p.dispatch(a))
	if err != nil {
		return fmt.Errorf("app %s: subscribe node calls: %w", a.name, err)
	}
	cs.node = sub
	return nil
}

// serveActiveCalls answers default-routed and ToAny calls while active. A
// singleton's leader takes the leader subject alone; pool instances share it
// in a queue group, so the default route reaches "the" instance of either.
func (p *Platform) serveActiveCalls(a *Application) error {
	cs := p.callSubsOf(a)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	h := p.dispatch(a)
	var leader *nats.Subscription
	var err error
	if a.mode == ModeSingleton {
		leader, err = p.nc.Subscribe(p.layout.CallLeaderSubject(a.name), h)
	} else {
		leader, err = p.nc.QueueSubscribe(p.layout.CallLeaderSubject(a.name), "q", h)
	}
	if err != nil {
		return fmt.Errorf("app %s: subscribe calls: %w", a.name, err)
	}
	anySub, err := p.nc.QueueSubscribe(p.layout.CallAnySubject(a.name), "q", h)
	if err != nil {
		_ = leader.Unsubscribe()
		return fmt.Errorf("app %s: subscribe calls: %w", a.name, err)
	}
	cs.active = []*nats.Subscription{leader, anySub}
	// Callers must not race the subscriptions: make sure the server has them.
	return p.nc.FlushTimeout(2 * time.Second)
}

func (p *Platform) stopActiveCalls(a *Application) error {
	cs := p.callSubsOf(a)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var errs []error
	for _, s := range cs.active {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	cs.active = nil
	return errors.Join(errs...)
}

func (p *Platform) dispatch(a *Application) nats.MsgHandler {
	return func(m *nats.Msg) {
		p.answering.Add(1)
		go func() {
			defer p.answering.Done()
			p.answer(a, m)
		}()
	}
}

// stopAnswering unsubscribes every call subscription, waits (up to
// timeout) for the calls being answered, and flushes their replies, so that
// closing the connection afterwards loses no reply: a caller whose request
// was received always gets an answer ("not owner" included) instead of
// waiting for its deadline.
func (p *Platform) stopAnswering(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	// Drain, not Unsubscribe: messages the client library has received but
	// not yet handed to the callback are dispatched instead of dropped.
	var subs []*nats.Subscription
	for _, a := range p.appsSnapshot() {
		cs := p.callSubsOf(a)
		cs.mu.Lock()
		for _, s := range append(cs.active, cs.node) {
			if s != nil && s.Drain() == nil {
				subs = append(subs, s)
			}
		}
		cs.active, cs.node = nil, nil
		cs.mu.Unlock()
	}
	for _, s := range subs {
		for s.IsValid() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	done := make(chan struct{})
	go func() { p.answering.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
	}
	_ = p.nc.FlushTimeout(time.Until(deadline))
}

func (p *Platform) answer(a *Application, m *nats.Msg) {
	reply := nats.NewMsg(m.Reply)
	reply.Header.Set(hdrNode, p.node)
	method := m.Header.Get(hdrMethod)
	h := a.handler(method)
	if h == nil {
		reply.Header.Set(hdrError, fmt.Sprintf("app %s has no handler for method %q", a.name, method))
		_ = m.RespondMsg(reply)
		return
	}
	if ps := m.Header.Get(hdrPartition); ps != "" {
		part, err := strconv.Atoi(ps)
		guard := a.ringGuard()
		if err != nil || !guard.enter(part) {
			reply.Header.Set(hdrNotOwner, ps)
			_ = m.RespondMsg(reply)
			return
		}
		// OnRelease of this partition waits for this call to end.
		defer guard.exit(part)
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultCallTimeout)
	if d := m.Header.Get(hdrDeadline); d != "" {
		var ns int64
		if _, err := fmt.Sscan(d, &ns); err == nil {
			cancel()
			ctx, cancel = context.WithDeadline(context.Background(), time.Unix(0, ns))
		}
	}
	defer cancel()
	resp, err := safeHandle(ctx, h, m.Data)
	if err != nil {
		reply.Header.Set(hdrError, err.Error())
	} else {
		reply.Data = resp
	}
	_ = m.RespondMsg(reply)
}

func safeHandle(ctx context.Context, h Handler, req []byte) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, req)
}

// CallOption routes a call.
type CallOption func(*callOptions)

type callOptions struct {
	route string // "", "any", "node", "key"
	node  string
	key   string
}

// ToAny sends the call to any active instance, balanced by NATS queue groups.
func ToAny() CallOption { return func(o *callOptions) { o.route = "any" } }

// ToNode sends the call to the app's instance on the given node, active or not.
func ToNode(nodeID string) CallOption {
	return func(o *callOptions) { o.route, o.node = "node", nodeID }
}

// ForKey sends the call to the ring owner of key.
func ForKey(key string) CallOption { return func(o *callOptions) { o.route, o.key = "key", key } }

// Client calls one app's handlers.
type Client struct {
	app      string
	platform *Platform // nil: the default platform at call time
}

// Call returns a client for app on the most recently created platform of
// this process. By default calls reach a singleton's leader, or any active
// instance of a pool.
func Call(app string) *Client { return &Client{app: app} }

// Call returns a client for app on this platform.
func (p *Platform) Call(app string) *Client { return &Client{app: app, platform: p} }

// Call sends payload to method. A []byte or string payload goes as it is;
// anything else is encoded as JSON. With no instance to take the call it
// fails at once with ErrNoInstance; a handler's error comes back as a
// *RemoteError.
func (c *Client) Call(ctx context.Context, method string, payload any, opts ...CallOption) ([]byte, error) {
	p := c.platform
	if p == nil {
		p = defaultPlatform.Load()
	}
	if p == nil {
		return nil, ErrNoPlatform
	}
	if p.initErr != nil {
		return nil, p.initErr
	}
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	data, err := encodePayload(payload)
	if err != nil {
		return nil, fmt.Errorf("call %s.%s: encode request: %w", c.app, method, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	var subject string
	switch o.route {
	case "":
		subject = p.layout.CallLeaderSubject(c.app)
	case "any":
		subject = p.layout.CallAnySubject(c.app)
	case "node":
		subject = p.layout.CallNodeSubject(c.app, o.node)
	case "key":
		return c.callForKey(ctx, p, method, data, o.key)
	}
	resp, err := c.request(ctx, p, subject, method, data, -1)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("call %s.%s: %w", c.app, method, ErrNoInstance)
	}
	if err != nil {
		return nil, fmt.Errorf("call %s.%s: %w", c.app, method, err)
	}
	return c.result(method, resp)
}

// request sends one call; partition >= 0 marks a ForKey call.
func (c *Client) request(ctx context.Context, p *Platform, subject, method string, data []byte, partition int) (*nats.Msg, error) {
	dl, _ := ctx.Deadline()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{
		hdrMethod:   []string{method},
		hdrDeadline: []string{strconv.FormatInt(dl.UnixNano(), 10)},
	}}
	if partition >= 0 {
		msg.Header.Set(hdrPartition, strconv.Itoa(partition))
	}
	return p.nc.RequestMsgWithContext(ctx, msg)
}

func (c *Client) result(method string, resp *nats.Msg) ([]byte, error) {
	if e := resp.Header.Get(hdrError); e != "" {
		return nil, &RemoteError{App: c.app, Method: method, Node: resp.Header.Get(hdrNode), Message: e}
	}
	return resp.Data, nil
}

// callForKey sends a call to the owner of key's ring partition. While the
// partition moves, the old owner answers "not owner" (or is gone) and the
// new one may still wait for the handoff; the call is retried against the
// newest assignment until it is served or ctx ends. It is never served by
// a node that does not own the partition at that moment.
func (c *Client) callForKey(ctx context.Context, p *Platform, method string, data []byte, key string) ([]byte, error) {
	v, err := p.ringViewOf(ctx, c.app)
	if err != nil {
		return nil, fmt.Errorf("call %s.%s ForKey(%q): %w", c.app, method, key, err)
	}
	const maxBackoff = 50 * time.Millisecond
	backoff := time.Millisecond
	part, owner := -1, ""
	for {
		s, changed := v.wait()
		if s != nil {
			part = placement.RingPartition(key, s.partitions)
			owner = s.owner(part)
		}
		if owner != "" {
			resp, err := c.request(ctx, p, p.layout.CallNodeSubject(c.app, owner), method, data, part)
			switch {
			case err == nil && resp.Header.Get(hdrNotOwner) == "":
				return c.result(method, resp)
			case err != nil && !errors.Is(err, nats.ErrNoResponders):
				return nil, fmt.Errorf("call %s.%s ForKey(%q) on %s: %w", c.app, method, key, owner, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("call %s.%s ForKey(%q): partition %d has no owner serving it (last tried %q): %w (%w)",
				c.app, method, key, part, owner, ErrNoInstance, ctx.Err())
		case <-changed:
		case <-time.After(backoff):
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

func encodePayload(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	case json.RawMessage:
		return x, nil
	}
	return json.Marshal(v)
}

// CallJSON calls method with req encoded as JSON and decodes the answer into Resp.
func CallJSON[Resp any](ctx context.Context, c *Client, method string, req any, opts ...CallOption) (Resp, error) {
	var out Resp
	// Always JSON, even for a string or []byte request, which Call would
	// send as they are.
	raw, err := json.Marshal(req)
	if err != nil {
		return out, fmt.Errorf("call %s.%s: encode request: %w", c.app, method, err)
	}
	b, err := c.Call(ctx, method, json.RawMessage(raw), opts...)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("call %s.%s: decode response: %w", c.app, method, err)
	}
	return out, nil
}

// HandleJSON adapts a typed function to a Handler: the request is decoded
// from JSON and the response encoded to JSON.
func HandleJSON[Req, Resp any](fn func(ctx context.Context, req Req) (Resp, error)) Handler {
	return func(ctx context.Context, raw []byte) ([]byte, error) {
		var req Req
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &req); err != nil {
				return nil, fmt.Errorf("decode request: %w", err)
			}
		}
		resp, err := fn(ctx, req)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}
}
