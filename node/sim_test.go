package node

import (
	"math"
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
