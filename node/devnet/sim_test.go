package devnet

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestHistogramQuantiles merges two nodes' Prometheus histograms and reads
// quantiles the way histogram_quantile does: linear inside the bucket.
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for _, obs := range [][]float64{{0.015, 0.015, 0.03}, {0.03, 0.07, 0.9}} {
		p := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: []float64{0.01, 0.02, 0.04, 0.08}})
		for _, v := range obs {
			p.Observe(v)
		}
		var m dto.Metric
		if err := p.Write(&m); err != nil {
			t.Fatal(err)
		}
		h.add(m.GetHistogram())
	}
	q := h.quantiles()
	if q.Count != 6 {
		t.Fatalf("count %v, want 6", q.Count)
	}
	// Six observations: two in (10,20] ms, two in (20,40], one in
	// (40,80], one past 80. The median (rank 3) is halfway through the
	// (20,40] bucket; p99 is past the last bound, reported as 80 ms.
	if math.Abs(q.P50MS-30) > 1e-9 {
		t.Errorf("p50 %v ms, want 30", q.P50MS)
	}
	if q.P99MS != 80 {
		t.Errorf("p99 %v ms, want 80 (the last bound)", q.P99MS)
	}
	if (&histogram{}).quantiles() != (Quantiles{}) {
		t.Error("an empty histogram has quantiles")
	}
}

// TestSimEpochLength: the sim's epoch grows with the challenges per epoch
// and the shard, per core, with a floor of 4 s; 1,000 peers at the CLI's
// defaults on two cores get 25 s (150 ms of CPU per challenge, 75 % busy).
func TestSimEpochLength(t *testing.T) {
	if got := SimEpochLength(1000, 8, 0.25, 40*time.Millisecond, 2); got != 25*time.Second {
		t.Errorf("1,000 peers: %v, want 25s", got)
	}
	if got := SimEpochLength(1000, 8, 0.25, 40*time.Millisecond, 4); got != 12500*time.Millisecond {
		t.Errorf("four cores: %v, want 12.5s", got)
	}
	if got := SimEpochLength(20, 8, 1, 40*time.Millisecond, 2); got != 4*time.Second {
		t.Errorf("20 peers: %v, want the 4 s floor", got)
	}
	if got := SimEpochLength(3000, 8, 0.25, 40*time.Millisecond, 2); got != 75*time.Second {
		t.Errorf("3,000 peers: %v, want 75s", got)
	}
}

// TestShardLinks: every member of a shard gets at least min(degree,
// size − 1) distinct links, no pair twice, and the ring keeps the shard
// connected.
func TestShardLinks(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ n, degree int }{{1, 8}, {2, 8}, {5, 8}, {9, 8}, {14, 8}, {30, 8}, {30, 3}} {
		for range 20 {
			links := shardLinks(c.n, c.degree, r.Perm)
			deg := make([]int, c.n)
			seen := map[[2]int]bool{}
			for _, l := range links {
				if l[0] == l[1] || seen[l] || seen[[2]int{l[1], l[0]}] {
					t.Fatalf("n %d: link %v repeated or to itself", c.n, l)
				}
				seen[l] = true
				deg[l[0]]++
				deg[l[1]]++
			}
			for i, d := range deg {
				if d < min(c.degree, c.n-1) {
					t.Fatalf("n %d degree %d: member %d has %d links, want at least %d", c.n, c.degree, i, d, min(c.degree, c.n-1))
				}
			}
			for i := range c.n {
				if c.n > 1 && !seen[[2]int{i, (i + 1) % c.n}] && !seen[[2]int{(i + 1) % c.n, i}] {
					t.Fatalf("n %d: ring link %d-%d missing", c.n, i, (i+1)%c.n)
				}
			}
		}
	}
}
