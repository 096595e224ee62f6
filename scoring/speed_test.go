package scoring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// speedRun feeds a monitor a population of honest peers at speed 1 with
// log-normal noise sigma and one peer at relative speed f, round-robin,
// and returns after how many of its own observations the peer was
// flagged (0: never within n) and whether any honest peer was.
func speedRun(rng *rand.Rand, p SpeedParams, honest int, sigma, f float64, n int) (flaggedAt int, honestFlagged bool) {
	m := NewSpeedMonitor(p)
	for i := 1; i <= n; i++ {
		for h := range honest {
			st, _ := m.Observe(fmt.Sprint("h", h), "H100/int8", math.Exp(rng.NormFloat64()*sigma))
			honestFlagged = honestFlagged || st.Flagged
		}
		st, _ := m.Observe("x", "H100/int8", f*math.Exp(rng.NormFloat64()*sigma))
		if st.Flagged && flaggedAt == 0 {
			flaggedAt = i
		}
	}
	return flaggedAt, honestFlagged
}

// TestSpeedMonitorCatchesUnderpowered: a device at 90 % of its peers'
// speed is flagged, in 99 % of runs, within 20 of its passed challenges at
// 2 % latency noise and within 120 at 5 %; honest peers never are.
func TestSpeedMonitorCatchesUnderpowered(t *testing.T) {
	if testing.Short() {
		t.Skip("Monte Carlo: 200 runs per noise level")
	}
	p := DefaultSpeedParams()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		sigma  float64
		within int // observations by which 99 % of runs flag
	}{{0.02, 20}, {0.05, 120}} {
		const runs = 200
		var at []int
		for range runs {
			n, honestFlagged := speedRun(rng, p, 8, c.sigma, 0.90, 4*c.within)
			if honestFlagged {
				t.Fatalf("σ %.2f: an honest peer flagged", c.sigma)
			}
			if n == 0 {
				n = math.MaxInt
			}
			at = append(at, n)
		}
		slices.Sort(at)
		p50, p99 := at[runs/2], at[runs*99/100-1]
		if p99 > c.within {
			t.Errorf("σ %.2f: 99 %% of runs flag a 90 %% device by observation %d, want ≤ %d", c.sigma, p99, c.within)
		}
		t.Logf("σ %.2f: a 90 %% device flagged by observation %d in half the runs, %d in 99 %% (%d runs)", c.sigma, p50, p99, runs)
	}
}

// TestSpeedMonitorFalseFlagBound: with Alpha and Horizon relaxed so that
// the bound is measurable, devices at Tolerated (the worst honest case)
// are flagged within Horizon observations no more often than Alpha; a
// device at the median never is.
func TestSpeedMonitorFalseFlagBound(t *testing.T) {
	if testing.Short() {
		t.Skip("Monte Carlo: 300 runs")
	}
	p := DefaultSpeedParams()
	p.Alpha, p.Horizon = 0.05, 100
	rng := rand.New(rand.NewPCG(3, 4))
	const runs = 300
	flagged := 0
	for range runs {
		if at, _ := speedRun(rng, p, 8, 0.03, p.Tolerated, p.Horizon); at > 0 {
			flagged++
		}
	}
	if rate := float64(flagged) / runs; rate > p.Alpha {
		t.Errorf("devices at the tolerated speed flagged in %.3f of runs, bound %.3f", rate, p.Alpha)
	}
	for range 20 {
		if at, _ := speedRun(rng, DefaultSpeedParams(), 8, 0.03, 1, 500); at > 0 {
			t.Fatal("a device at its peers' speed flagged")
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
