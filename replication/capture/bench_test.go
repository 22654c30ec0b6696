package capture_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/replication/capture"
)

// BenchmarkCaptureLatency measures how long after a commit the Capturer's
// Next returns it: an in-process writer (its own connection) commits one
// small transaction at a time while a goroutine waits in Next; the next
// commit waits for the capture. Reported: p50/p99 from the start of the
// INSERT (it includes the commit) and from the return of the INSERT
// (clamped at 0: Next may return before the writer's call does).
func BenchmarkCaptureLatency(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []capture.Option
	}{
		{"inotify", nil},
		{"poll5ms", []capture.Option{capture.WithoutInotify()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			src := filepath.Join(dir, "src.db")
			a := openApp(b, src, "wal_autocheckpoint(0)", "synchronous(NORMAL)")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := capture.Open(ctx, src, bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			captured := make(chan time.Time, 1)
			go func() {
				for {
					if _, err := c.Next(ctx); err != nil {
						return
					}
					captured <- time.Now()
				}
			}()
			var fromStart, fromReturn []time.Duration
			payload := make([]byte, 200)
			id := 0
			for b.Loop() {
				id++
				t0 := time.Now()
				if _, err := a.db.Exec("INSERT INTO log (id, v) VALUES (?, ?)", id, payload); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				t2 := <-captured
				fromStart = append(fromStart, t2.Sub(t0))
				fromReturn = append(fromReturn, max(0, t2.Sub(t1)))
			}
			for _, m := range []struct {
				unit string
				d    []time.Duration
			}{{"start", fromStart}, {"return", fromReturn}} {
				slices.Sort(m.d)
				p := func(q float64) float64 {
					return float64(m.d[min(len(m.d)-1, int(q*float64(len(m.d))))].Microseconds())
				}
				b.ReportMetric(p(0.50), "p50-µs-from-"+m.unit)
				b.ReportMetric(p(0.99), "p99-µs-from-"+m.unit)
			}
			st := c.Stats()
			b.ReportMetric(float64(st.Checkpoints), "checkpoints")
		})
	}
}
