package gpu

import (
	"context"
	"time"
)

// MeasureInt8 runs MatMulInt8 on shape reps times (reps ≥ 1) and returns
// the best observed throughput in TOPS (2 operations per multiply-
// accumulate, 10^12 per second) and the best wall time. The best run, not
// the mean, is what the device can do; noise only slows runs down.
func MeasureInt8(ctx context.Context, b Backend, shape Shape, reps int) (tops float64, best time.Duration, err error) {
	var seed Seed
	for r := 0; r < max(reps, 1); r++ {
		seed[0] = byte(r)
		start := time.Now()
		if _, _, err := b.MatMulInt8(ctx, seed, shape); err != nil {
			return 0, 0, err
		}
		if d := time.Since(start); best == 0 || d < best {
			best = d
		}
	}
	return 2 * shape.MACs() / best.Seconds() / 1e12, best, nil
}
