package scoring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// noise draws a log-speed: normal with spread sigma, and with probability
// tail a slow outlier on top (a busy host, a retransmission), 10 % to 100 %
// slower in log.
func noise(rng *rand.Rand, sigma, tail float64) float64 {
	x := rng.NormFloat64() * sigma
	if rng.Float64() < tail {
		x -= 0.1 + 0.9*rng.Float64()
	}
	return x
}

// speedRun feeds a monitor a population of honest peers at speed 1 and
// one peer at relative speed f, all with the same noise, round-robin, and
// returns after how many of its own observations the peer was flagged (0:
// never within n) and whether any honest peer was.
func speedRun(rng *rand.Rand, p SpeedParams, honest int, sigma, tail, f float64, n int) (flaggedAt int, honestFlagged bool) {
	m := NewSpeedMonitor(p)
	for i := 1; i <= n; i++ {
		for h := range honest {
			st, _ := m.Observe(fmt.Sprint("h", h), "H100/int8", math.Exp(noise(rng, sigma, tail)))
			honestFlagged = honestFlagged || st.Flagged
		}
		st, _ := m.Observe("x", "H100/int8", f*math.Exp(noise(rng, sigma, tail)))
		if st.Flagged && flaggedAt == 0 {
			flaggedAt = i
		}
	}
	return flaggedAt, honestFlagged
}

// TestSpeedMonitorCatchesUnderpowered: a device at 90 % of its peers'
// speed is flagged, in 99 % of runs, within the stated number of its passed
// challenges, with latency noise of 2 % or 5 % and one answer in ten a slow
// outlier; honest peers in the same runs never are.
func TestSpeedMonitorCatchesUnderpowered(t *testing.T) {
	if testing.Short() {
		t.Skip("Monte Carlo: 200 runs per noise level")
	}
	p := DefaultSpeedParams()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		sigma, tail float64
		within      int // observations by which 99 % of runs flag
	}{{0.02, 0, 18}, {0.02, 0.1, 26}, {0.05, 0, 34}, {0.05, 0.1, 60}} {
		const runs = 200
		var at []int
		for range runs {
			n, honestFlagged := speedRun(rng, p, 8, c.sigma, c.tail, 0.90, c.within+1)
			if honestFlagged {
				t.Fatalf("σ %.2f, tail %.1f: an honest peer flagged", c.sigma, c.tail)
			}
			if n == 0 {
				n = math.MaxInt
			}
			at = append(at, n)
		}
		slices.Sort(at)
		p50, p99 := at[runs/2], at[runs*99/100-1]
		if p99 > c.within {
			t.Errorf("σ %.2f, tail %.1f: 99 %% of runs flag a 90 %% device by observation %d, want ≤ %d", c.sigma, c.tail, p99, c.within)
		}
		t.Logf("σ %.2f, tail %.1f: a 90 %% device flagged by observation %d in half the runs, %d in 99 %% (%d runs)", c.sigma, c.tail, p50, p99, runs)
	}
}

// TestSpeedMonitorFalseFlagBound: with the test's level relaxed so that it
// is measurable (Alpha/Horizon = 10⁻³ instead of 10⁻¹⁰), devices answering
// like their class are flagged within Horizon observations no more often
// than Alpha, heavy tail or not; at the default level none ever is.
func TestSpeedMonitorFalseFlagBound(t *testing.T) {
	if testing.Short() {
		t.Skip("Monte Carlo: 300 runs")
	}
	p := DefaultSpeedParams()
	p.Alpha, p.Horizon = 0.1, 100
	rng := rand.New(rand.NewPCG(3, 4))
	const runs = 300
	for _, tail := range []float64{0, 0.2} {
		flagged := 0
		for range runs {
			if at, _ := speedRun(rng, p, 8, 0.03, tail, 1, p.Horizon); at > 0 {
				flagged++
			}
		}
		if rate := float64(flagged) / runs; rate > p.Alpha {
			t.Errorf("tail %.1f: devices like their class flagged in %.3f of runs, bound %.3f", tail, rate, p.Alpha)
		}
		t.Logf("tail %.1f: %d of %d flagged at level %.0e", tail, flagged, runs, p.Alpha/float64(p.Horizon))
	}
	for range 20 {
		if at, honest := speedRun(rng, DefaultSpeedParams(), 8, 0.05, 0.2, 1, 500); at > 0 || honest {
			t.Fatal("a device like its class flagged at the default level")
		}
	}
}

// TestSpeedMonitorNeedsPeers: without MinPeers peers in a class there is
// no reference and nothing is tested; bad speeds are ignored.
func TestSpeedMonitorNeedsPeers(t *testing.T) {
	m := NewSpeedMonitor(DefaultSpeedParams())
	for i := range 100 {
		if _, tested := m.Observe(fmt.Sprint("p", i%3), "c", 0.5); tested {
			t.Fatal("tested with three peers")
		}
	}
	for _, s := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, tested := m.Observe("p0", "c", s); tested {
			t.Errorf("speed %v tested", s)
		}
	}
}

func TestBinomialTail(t *testing.T) {
	for _, c := range []struct {
		n, k int
		q    float64
		want float64
	}{{10, 0, 0.3, 1}, {10, 10, 0.5, 1.0 / 1024}, {4, 2, 0.5, 11.0 / 16}, {20, 18, 0.15, 2.067e-13}} {
		if got := binomialTail(c.n, c.k, c.q); math.Abs(got-c.want) > 0.05*c.want {
			t.Errorf("P(Bin(%d, %v) ≥ %d) = %v, want %v", c.n, c.q, c.k, got, c.want)
		}
	}
}

func TestMedian(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for n := 1; n < 40; n++ {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(rng.IntN(10))
		}
		s := slices.Sorted(slices.Values(xs))
		want := s[n/2]
		if n%2 == 0 {
			want = (s[n/2-1] + s[n/2]) / 2
		}
		if got := median(xs); got != want {
			t.Fatalf("median %v = %v, want %v", xs, got, want)
		}
	}
}

// TestSpeedMonitorOneVotePerPeer: identities that answer far more often,
// and faster than their claim, do not set the bar while they are fewer
// than the other honest peers of the class (two against three); a flag
// lifts once the class's bar comes back.
func TestSpeedMonitorOneVotePerPeer(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m := NewSpeedMonitor(DefaultSpeedParams())
	for range 300 {
		for h := range 4 {
			if st, _ := m.Observe(fmt.Sprint("h", h), "c", math.Exp(noise(rng, 0.02, 0))); st.Flagged {
				t.Fatalf("honest h%d flagged beside two fast identities answering ten times as often", h)
			}
			for s := range 2 * 10 {
				m.Observe(fmt.Sprint("s", s%2), "c", 1.25*math.Exp(noise(rng, 0.02, 0)))
			}
		}
	}
	// Now the fast identities are the majority: the honest peers look
	// slow and are flagged; once they are gone the flags lift.
	for range 100 {
		for s := range 6 {
			m.Observe(fmt.Sprint("f", s), "c", 1.25*math.Exp(noise(rng, 0.02, 0)))
		}
		m.Observe("h0", "c", math.Exp(noise(rng, 0.02, 0)))
	}
	if st, _ := m.State("h0"); !st.Flagged {
		t.Fatalf("a majority of fast identities did not move the bar (state %+v): the test above tests nothing", st)
	}
	for range 300 {
		for h := range 5 {
			m.Observe(fmt.Sprint("h", h), "c", math.Exp(noise(rng, 0.02, 0)))
		}
	}
	if st, _ := m.State("h0"); st.Flagged {
		t.Errorf("h0 still flagged once the fast identities left: %+v", st)
	}
}
