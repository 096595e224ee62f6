package node

import (
	rtmetrics "runtime/metrics"
	"sync"
	"time"

	"github.com/poai-network/poai/challenge/pb"
)

// schedSample is the scheduling latency of one sampling period.
type schedSample struct {
	at  time.Time     // end of the period
	p99 time.Duration // 99th percentile of the period's scheduling latencies
}

// schedLag follows the Go runtime's scheduling latency: how long runnable
// goroutines of this process waited for a CPU (runtime/metrics
// "/sched/latencies:seconds"), as the 99th percentile of each
// schedLagPeriod, over the last schedLagKeep.
//
// A verifier's clock is only as good as its process's scheduling: when
// goroutines wait tens of milliseconds for a CPU, a commitment that came
// in time is read late, and a late verdict says more about the verifier
// than about the target. Nodes withhold timing verdicts then
// (Node.overloaded). The metric is process-wide, so every node of a
// process (poai sim, poai devnet) shares one sampler: there the nodes also
// share the provers' CPU, and a backlog that delays the verifier delays
// the proof as well.
type schedLag struct {
	mu      sync.Mutex
	samples []schedSample // ring, oldest first once full
	next    int
	users   int
	stop    chan struct{}
}

const (
	schedLagPeriod = 250 * time.Millisecond
	schedLagKeep   = 10 * time.Minute
)

var processLag = &schedLag{}

// acquire starts the sampler for its first user; release stops it after
// its last.
func (s *schedLag) acquire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users++
	if s.users == 1 {
		s.stop = make(chan struct{})
		s.samples, s.next = nil, 0
		go s.run(s.stop)
	}
}

func (s *schedLag) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users--
	if s.users == 0 {
		close(s.stop)
	}
}

func (s *schedLag) run(stop chan struct{}) {
	sample := []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}}
	rtmetrics.Read(sample)
	if sample[0].Value.Kind() != rtmetrics.KindFloat64Histogram {
		return // not reported by this runtime: never overloaded
	}
	prev := copyCounts(sample[0].Value.Float64Histogram())
	tick := time.NewTicker(schedLagPeriod)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			rtmetrics.Read(sample)
			h := sample[0].Value.Float64Histogram()
			p99 := deltaQuantile(prev, h, 0.99)
			prev = copyCounts(h)
			s.add(schedSample{at: now, p99: p99})
		}
	}
}

func (s *schedLag) add(x schedSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := int(schedLagKeep / schedLagPeriod); len(s.samples) < n {
		s.samples = append(s.samples, x)
		return
	}
	s.samples[s.next] = x
	s.next = (s.next + 1) % len(s.samples)
}

// max returns the largest p99 of the periods that overlap [from, to].
func (s *schedLag) max(from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m time.Duration
	for _, x := range s.samples {
		if !x.at.Before(from) && !x.at.Add(-schedLagPeriod).After(to) {
			m = max(m, x.p99)
		}
	}
	return m
}

func copyCounts(h *rtmetrics.Float64Histogram) []uint64 {
	return append([]uint64(nil), h.Counts...)
}

// deltaQuantile returns the q-quantile of the observations h gained since
// the counts prev, as the upper bound of the bucket that holds it (0 when
// there were none).
func deltaQuantile(prev []uint64, h *rtmetrics.Float64Histogram, q float64) time.Duration {
	var total uint64
	for i, c := range h.Counts {
		if i < len(prev) {
			c -= prev[i]
		}
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q * float64(total))
	var seen uint64
	for i, c := range h.Counts {
		if i < len(prev) {
			c -= prev[i]
		}
		seen += c
		if seen > rank {
			upper := h.Buckets[i+1]
			if upper > 1e9 { // +Inf: report the lower bound
				upper = h.Buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}

// OverloadFraction is the share of the allowance ([challenge] allowance)
// that the process's scheduling latency (99th percentile over 250 ms) may
// reach during a challenge before this node withholds its timing verdicts
// on it: half of it, 50 ms at the sim's 100 ms, 250 ms at the default 500
// ms. In the 1,000-peer sim, proofs running while that percentile stayed
// under 50 ms took their anticipated time or little more; above it, 70 %
// took over four times as long.
const OverloadFraction = 0.5

// overloaded reports whether this process was too busy, at some point in
// [from, to], for its timing judgments to be fair: a late or missing
// answer then says nothing about the target, and the node attests
// nothing about its timing (a wrong answer is still attested).
func (n *Node) overloaded(from, to time.Time) bool {
	limit := time.Duration(float64(n.cfg.Challenge.Allowance.Std()) * OverloadFraction)
	return limit > 0 && processLag.max(from, to) > limit
}

// withholdTiming decides, for a challenge whose answer missed its deadline
// or never came, whether this node was overloaded between the challenge's
// arrival and until (overloaded): when the commitment came late, until it
// came, since a timely one may have been read late; when nothing came in
// time, until the deadline. If so it marks the challenge attested without
// publishing anything, counts it (poai_verdicts_withheld_total) and
// reports true.
func (n *Node) withholdTiming(t *tracked, until time.Time) bool {
	if !n.overloaded(t.receivedAt, until) {
		return false
	}
	t.attested = true
	n.metrics.withheld.Inc()
	n.log.Debug("timing verdict withheld: this node was overloaded", "challenge", t.cid, "target", shortID(t.target))
	return true
}

// deadlineOf returns a challenge's deadline as a duration.
func deadlineOf(ch *pb.Challenge) time.Duration {
	return time.Duration(ch.GetDeadlineMs()) * time.Millisecond
}
