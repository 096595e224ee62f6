package challenge

import (
	"math"
	"time"

	"github.com/poai-network/poai/gpu"
)

// OpeningsFor returns the number s of rows to open so that a prover that
// computed only a fraction f of the rows passes with probability at most p:
// the smallest s with f^s ≤ p, i.e. ceil(ln p / ln f). Sampling without
// replacement only lowers the cheater's odds. For f = 0.9 and p = 0.001 it
// returns 66. Arguments outside (0,1) return 1.
func OpeningsFor(f, p float64) int {
	if f <= 0 || f >= 1 || p <= 0 || p >= 1 {
		return 1
	}
	return int(math.Ceil(math.Log(p) / math.Log(f)))
}

// Sizing holds the knobs that turn a device claim into a workload and a
// deadline.
type Sizing struct {
	// Target is how long the workload should take on the claimed device.
	Target time.Duration
	// K and M fix the inner and column dimensions; N grows with the claim.
	K, M int
	// MinN and MaxN bound the row count (MinN ≥ the openings).
	MinN, MaxN int
	// Slack multiplies the anticipated time (≥ 1).
	Slack float64
	// Allowance is added for gossip and scheduling, independent of size.
	Allowance time.Duration
}

// ShapeFor returns the product shape for a device claiming int8TOPS
// (tera-operations per second, 2 per MAC): N rows of K×M so that the work
// takes about s.Target, rounded up to a multiple of 8 and clamped to
// [MinN, MaxN].
func (s Sizing) ShapeFor(int8TOPS float64) gpu.Shape {
	macs := int8TOPS * 1e12 / 2 * s.Target.Seconds()
	n := int(math.Ceil(macs/float64(s.K*s.M)/8)) * 8
	n = min(max(n, s.MinN), s.MaxN)
	return gpu.Shape{N: n, K: s.K, M: s.M}
}

// Anticipated returns the time a device with the claimed int8 throughput
// (TOPS) needs for shape: 2·n·k·m / (TOPS·10^12) seconds.
func Anticipated(shape gpu.Shape, int8TOPS float64) time.Duration {
	if int8TOPS <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(2 * shape.MACs() / (int8TOPS * 1e12) * float64(time.Second))
}

// DeadlineFor returns anticipated × Slack + Allowance for shape on a device
// claiming int8TOPS.
func (s Sizing) DeadlineFor(shape gpu.Shape, int8TOPS float64) time.Duration {
	return time.Duration(float64(Anticipated(shape, int8TOPS))*s.Slack) + s.Allowance
}
