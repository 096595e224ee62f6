package node

import (
	"log/slog"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poai-network/poai/challenge/pb"
)

// TestDeltaQuantile reads a quantile of what a runtime histogram gained
// between two reads, as the upper bound of its bucket.
func TestDeltaQuantile(t *testing.T) {
	h := &rtmetrics.Float64Histogram{Buckets: []float64{0, 0.001, 0.01, 0.1, 1}, Counts: []uint64{5, 10, 90, 3}}
	prev := []uint64{5, 5, 0, 0}
	// Gained: 5 in (1,10] ms, 90 in (10,100] ms, 3 in (0.1,1] s: the
	// median lies in (10,100] ms, the 99th percentile in (0.1,1] s.
	if got := deltaQuantile(prev, h, 0.5); got != 100*time.Millisecond {
		t.Errorf("p50 %v, want 100ms", got)
	}
	if got := deltaQuantile(prev, h, 0.99); got != time.Second {
		t.Errorf("p99 %v, want 1s", got)
	}
	if got := deltaQuantile(h.Counts, h, 0.99); got != 0 {
		t.Errorf("nothing gained: %v", got)
	}
}

// TestSchedLagWindow: the largest p99 of the periods overlapping a window.
func TestSchedLagWindow(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	s := &schedLag{}
	add := func(x schedSample) { s.samples = append(s.samples, x) }
	for i, ms := range []int{1, 2, 80, 3, 1} {
		add(schedSample{from: t0.Add(time.Duration(i) * schedLagPeriod), to: t0.Add(time.Duration(i+1) * schedLagPeriod), p99: time.Duration(ms) * time.Millisecond})
	}
	// Span 3 covers [500, 750] ms.
	if got := s.max(t0.Add(600*time.Millisecond), t0.Add(700*time.Millisecond)); got != 80*time.Millisecond {
		t.Errorf("inside the busy period: %v, want 80ms", got)
	}
	if got := s.max(t0.Add(760*time.Millisecond), t0.Add(1250*time.Millisecond)); got != 3*time.Millisecond {
		t.Errorf("after it: %v, want 3ms", got)
	}
	if got := s.max(t0.Add(time.Hour), t0.Add(2*time.Hour)); got != 0 {
		t.Errorf("no sample: %v", got)
	}
}

// TestOverloadWithholdsTiming runs more CPU-bound goroutines than there
// are processors, so runnable goroutines wait tens of milliseconds for a
// CPU: the sampler sees it, and a late answer judged over that time is
// not attested (counted instead), while a window outside it is judged.
func TestOverloadWithholdsTiming(t *testing.T) {
	processLag.acquire()
	defer processLag.release()
	start := time.Now()
	var stop atomic.Bool
	for range 16 {
		go func() {
			x := 0
			for !stop.Load() {
				x++
			}
			_ = x
		}()
	}
	time.Sleep(8 * schedLagPeriod)
	stop.Store(true)
	busy := time.Now()
	c := DefaultConfig()
	c.Challenge.Allowance = Duration(20 * time.Millisecond) // limit 10 ms
	b := &base{cfg: c, metrics: newMetrics(), log: slog.New(slog.DiscardHandler)}
	n := &Node{base: b, tk: &tracker{base: b}}
	if lag := processLag.max(start, busy); !n.tk.overloaded(start, busy) {
		t.Fatalf("16 spinning goroutines: scheduling p99 %v, not over 10 ms", lag)
	}
	tr := &tracked{ch: &pb.Challenge{DeadlineMs: 500}, receivedAt: start}
	if !n.tk.withholdTiming(tr, start.Add(deadlineOf(tr.ch))) || !tr.settled() {
		t.Fatal("a timing verdict over an overloaded window was not withheld")
	}
	// A lone node retries a challenge missed over that window (verifiers
	// elsewhere may have recorded the miss); one sharing its process with
	// other nodes does not.
	n.tk.tracked = map[string]*tracked{"k": {ch: &pb.Challenge{DeadlineMs: 500}, receivedAt: start}}
	n.tk.retryIfMissed(1, randomID(t), "k")
	if got := testutil.ToFloat64(n.metrics.retriesSkipped); got != 0 {
		t.Fatalf("a lone node skipped %v retries", got)
	}
	processLag.acquire() // a second node in this process
	defer processLag.release()
	n.tk.retryIfMissed(1, randomID(t), "k")
	if got := testutil.ToFloat64(n.metrics.retriesSkipped); got != 1 {
		t.Fatalf("retries skipped %v, want 1", got)
	}
	if n.tk.overloaded(start.Add(-time.Hour), start.Add(-time.Minute)) {
		t.Fatal("a window before the sampler started counts as overloaded")
	}
	// Under an hour's allowance only the starved share can withhold: it
	// stays under MaxStarvedShare when this process has the cores to
	// itself, and rightly goes over when other processes (a parallel test
	// run) held them. Wait until every sample overlapping the window is in.
	time.Sleep(2 * schedLagPeriod)
	c.Challenge.Allowance = Duration(time.Hour)
	n.cfg = c
	starved := processLag.starved(start, busy)
	if got := n.tk.withholdTiming(&tracked{ch: &pb.Challenge{DeadlineMs: 500}, receivedAt: start}, busy); got != (starved > MaxStarvedShare) {
		t.Fatalf("withheld %v with the scheduling latency under half the allowance and a starved share of %.2f (limit %v)", got, starved, MaxStarvedShare)
	}
}
