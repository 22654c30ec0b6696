//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ServeWhoami listens on 0.0.0.0:port (tcp4) inside the host's namespace
// and answers every connection with answer+"\n", then closes it. This is
// the whole protocol: connect, read one line. stop closes the listener and
// waits for the server's goroutines; it is idempotent. The server also stops
// when ctx ends.
func ServeWhoami(ctx context.Context, host *Host, port int, answer string) (stop func(), err error) {
	var ln net.Listener
	err = host.Do(func() error {
		var lc net.ListenConfig
		lc.SetMultipathTCP(false)
		var err error
		ln, err = lc.Listen(ctx, "tcp4", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("netlab: whoami listen in %s: %w", host.Name, err)
	}
	msg := []byte(answer + "\n")
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
					return
				}
				continue // e.g. ECONNABORTED: keep serving
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write(msg)
			_ = c.Close()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}, nil
}
