package node

import (
	rtmetrics "runtime/metrics"
	"sync"
	"time"

	"github.com/poai-network/poai/challenge/pb"
)

// schedSample is the scheduling latency of one span between two reads.
type schedSample struct {
	from, to time.Time     // the span: from the previous read to this one
	p99      time.Duration // 99th percentile of the span's scheduling latencies
	// run and wait are the nanoseconds the process's threads spent on a
	// CPU and waiting for one in the span (runqueue).
	run, wait uint64
}

// schedLag follows the Go runtime's scheduling latency: how long runnable
// goroutines of this process waited for a CPU (runtime/metrics
// "/sched/latencies:seconds"), as the 99th percentile of the spans between
// reads (every schedLagPeriod, and on demand), over the last
// schedLagKeep.
//
// A verifier's clock is only as good as its process's scheduling: when
// goroutines wait tens of milliseconds for a CPU, a commitment that came
// in time is read late, and a late verdict says more about the verifier
// than about the target. Nodes withhold timing verdicts then
// (Node.overloaded). The metric is process-wide, so every node of a
// process (poai-sim, poai devnet) shares one sampler: there the nodes also
// share the provers' CPU, and a backlog that delays the verifier delays
// the proof as well.
type schedLag struct {
	mu      sync.Mutex
	samples []schedSample // ring; the oldest at next once full
	next    int
	users   int
	gen     int // run generation: a stopped run's late sample is dropped
	stop    chan struct{}
	prev    []uint64 // histogram counts at the last read
	prevAt  time.Time
	read    []rtmetrics.Sample
	rq      runqueue
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
	if s.users > 1 {
		return
	}
	s.gen++
	s.stop = make(chan struct{})
	s.samples, s.next = nil, 0
	s.read = []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}}
	rtmetrics.Read(s.read)
	if s.read[0].Value.Kind() != rtmetrics.KindFloat64Histogram {
		s.read = nil // not reported by this runtime: never overloaded
		return
	}
	s.prev, s.prevAt = copyCounts(s.read[0].Value.Float64Histogram()), time.Now()
	s.rq = runqueue{}
	s.rq.sample()
	go s.run(s.stop, s.gen)
}

func (s *schedLag) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users--
	if s.users == 0 {
		close(s.stop)
	}
}

// shared reports whether several nodes run in this process (poai-sim,
// poai devnet): they share its CPU, provers included.
func (s *schedLag) shared() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users > 1
}

func (s *schedLag) run(stop chan struct{}, gen int) {
	tick := time.NewTicker(schedLagPeriod)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			s.mu.Lock()
			if s.gen == gen {
				s.sampleLocked(time.Now())
			}
			s.mu.Unlock()
		}
	}
}

// sampleLocked reads the histogram and records the span since the last
// read. s.mu is held.
func (s *schedLag) sampleLocked(now time.Time) {
	if s.read == nil {
		return
	}
	rtmetrics.Read(s.read)
	h := s.read[0].Value.Float64Histogram()
	x := schedSample{from: s.prevAt, to: now, p99: deltaQuantile(s.prev, h, 0.99)}
	x.run, x.wait = s.rq.sample()
	s.prev, s.prevAt = copyCounts(h), now
	if n := int(schedLagKeep / schedLagPeriod); len(s.samples) < n {
		s.samples = append(s.samples, x)
		return
	}
	s.samples[s.next] = x
	s.next = (s.next + 1) % len(s.samples)
}

// max returns the largest p99 of the spans that overlap [from, to]. When
// to lies past the last read (a verdict taken right after the commitment
// it judges came in), it reads the histogram first, so the span that held
// a stall just before it counts.
func (s *schedLag) max(from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); s.users > 0 && !to.After(now) && to.Sub(s.prevAt) > schedLagPeriod/5 {
		s.sampleLocked(now)
	}
	var m time.Duration
	for _, x := range s.samples {
		if !x.to.Before(from) && !x.from.After(to) {
			m = max(m, x.p99)
		}
	}
	return m
}

// starved returns the share of the CPU time this process's threads asked
// for over the spans overlapping [from, to] that they spent waiting for
// a core: Σwait / Σ(run + wait). It is 0 where the kernel gives no
// schedstat, and when the waits add up to less than a tenth of the
// window: a nearly idle process's few short waits make a large share of
// a tiny demand without delaying anything.
func (s *schedLag) starved(from, to time.Time) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var run, wait uint64
	for _, x := range s.samples {
		if !x.to.Before(from) && !x.from.After(to) {
			run += x.run
			wait += x.wait
		}
	}
	if run+wait == 0 || time.Duration(wait) < to.Sub(from)/10 {
		return 0
	}
	return float64(wait) / float64(run+wait)
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

// MaxStarvedShare is the share of its CPU demand this process's threads
// may spend waiting for cores other processes hold (schedLag.starved),
// over a challenge, before this node withholds its timing verdicts on it:
// past it the process ran at under 70 % of the speed it asked for, its
// clock readings late and a devnet's provers (which share it) slow. Alone
// on a 2-core machine a devnet measures about 0.01; beside two processes
// burning both cores, 0.33 to 0.5, and then one honest proof in a few
// dozen missed its deadline (TestNoFalseFailuresUnderContention failed on
// CI at 0.6).
const MaxStarvedShare = 0.3

// overloaded reports whether this process was too busy, during [from,
// to], for its timing judgments to be fair: at some point its goroutines
// waited for a processor past OverloadFraction of the allowance, or over
// the window its threads waited for cores other processes held past
// MaxStarvedShare of their demand. A late or missing answer then says
// nothing about the target, and the node attests nothing about its
// timing (a wrong answer is still attested).
func (tk *tracker) overloaded(from, to time.Time) bool {
	limit := time.Duration(float64(tk.cfg.Challenge.Allowance.Std()) * OverloadFraction)
	return limit > 0 && (processLag.max(from, to) > limit || processLag.starved(from, to) > MaxStarvedShare)
}

// withholdTiming decides, for a challenge whose answer missed its deadline
// or never came, whether this node was overloaded between the challenge's
// arrival and until (overloaded): when the commitment came late, until it
// came, since a timely one may have been read late; when nothing came in
// time, until the deadline. If so it marks the challenge attested without
// publishing anything, counts it (poai_verdicts_withheld_total) and
// reports true.
func (tk *tracker) withholdTiming(t *tracked, until time.Time) bool {
	if !tk.overloaded(t.receivedAt, until) {
		return false
	}
	t.advance(settled)
	tk.metrics.withheld.Inc()
	tk.log.Debug("timing verdict withheld: this node was overloaded", "challenge", t.cid, "target", shortID(t.target))
	return true
}

// deadlineOf returns a challenge's deadline as a duration.
func deadlineOf(ch *pb.Challenge) time.Duration {
	return time.Duration(ch.GetDeadlineMs()) * time.Millisecond
}
