package gpu

import (
	"cmp"
	"context"
	"time"
)

// Throughput is a backend's measured speed on each workload.
type Throughput struct {
	Int8TOPS   float64 `json:"int8_tops"`   // int8 product, 10^12 ops/s (2 per MAC)
	BF16TFLOPS float64 `json:"bf16_tflops"` // bf16 product, 10^12 flop/s (2 per MAC)
	HashGHps   float64 `json:"hash_ghps"`   // VRAM workload, 10^9 SHA-256 evaluations/s
	// LLMInt8TOPS is the llm workload's rate, 10^12 ops/s (2 per
	// multiply-add): measured by challenge.MeasureLLM, 0 when not.
	LLMInt8TOPS float64 `json:"llm_int8_tops,omitempty"`
}

// best runs f reps times (at least once) and returns the shortest time:
// what the device can do, since noise only slows runs down.
func best(reps int, f func(rep int) error) (time.Duration, error) {
	var b time.Duration
	for r := 0; r < max(reps, 1); r++ {
		start := time.Now()
		if err := f(r); err != nil {
			return 0, err
		}
		if d := time.Since(start); b == 0 || d < b {
			b = d
		}
	}
	return b, nil
}

// MeasureInt8 runs MatMulInt8 on shape reps times and returns the best
// throughput in TOPS and the best time.
func MeasureInt8(ctx context.Context, b Backend, shape Shape, reps int) (float64, time.Duration, error) {
	d, err := best(reps, func(r int) error {
		if st, ok := b.(Streamer); ok {
			_, err := st.LeavesInt8(ctx, Seed{byte(r)}, shape)
			return err
		}
		_, _, err := b.MatMulInt8(ctx, Seed{byte(r)}, shape)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return 2 * shape.MACs() / d.Seconds() / 1e12, d, nil
}

// MeasureBF16 runs MatMulBF16 on shape reps times and returns the best
// throughput in TFLOPS and the best time.
func MeasureBF16(ctx context.Context, b Backend, shape Shape, reps int) (float64, time.Duration, error) {
	d, err := best(reps, func(r int) error {
		if st, ok := b.(Streamer); ok {
			_, err := st.LeavesBF16(ctx, Seed{byte(r)}, shape)
			return err
		}
		_, _, err := b.MatMulBF16(ctx, Seed{byte(r)}, shape)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return 2 * shape.MACs() / d.Seconds() / 1e12, d, nil
}

// MeasureVRAM runs the VRAM workload with p reps times and returns the
// best rate in 10^9 hashes per second and the best time.
func MeasureVRAM(ctx context.Context, b Backend, p VRAMParams, reps int) (float64, time.Duration, error) {
	d, err := best(reps, func(r int) error {
		_, _, err := b.VRAM(ctx, Seed{byte(r)}, p)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return p.Hashes() / d.Seconds() / 1e9, d, nil
}

// MeasureShapes are the inner (K) and column (M) dimensions the challenges
// of a node will use. A CPU prover's cost per multiply-add depends on them
// (each row of C is also encoded and hashed into a leaf, which weighs more
// the smaller k·m is), so the CPU backend is measured on them. A workload
// whose K or M is 0 is measured on MeasureAll's shape.
type MeasureShapes struct {
	Int8K, Int8M, BF16K, BF16M int
	// Reps is the number of timed runs of each workload, the best of which
	// counts (0: 3). A core whose speed changes from moment to moment
	// needs more: this repository's 2-core test machine alternated between
	// two single-core speeds 1.8× apart for a few hundred milliseconds at
	// a time, so three runs of 50–90 ms read either.
	Reps int
}

// cpuShapes returns the int8 and bf16 shapes a CPU backend is measured on:
// K and M from s where both are set, with as many rows as keep the
// multiply-adds of MeasureAll's shapes (256×512×512 and 512×128×128), at
// least one (so a k·m beyond those shapes' work is measured on one row).
func (s MeasureShapes) cpuShapes() (int8s, bf16s Shape) {
	int8s, bf16s = Shape{N: 256, K: 512, M: 512}, Shape{N: 512, K: 128, M: 128}
	if s.Int8K > 0 && s.Int8M > 0 {
		int8s = Shape{N: max(1, int8s.N*int8s.K*int8s.M/(s.Int8K*s.Int8M)), K: s.Int8K, M: s.Int8M}
	}
	if s.BF16K > 0 && s.BF16M > 0 {
		bf16s = Shape{N: max(1, bf16s.N*bf16s.K*bf16s.M/(s.BF16K*s.BF16M)), K: s.BF16K, M: s.BF16M}
	}
	return int8s, bf16s
}

// MeasureAll measures every workload and returns the throughputs: on small
// shapes for the CPU backend (about a second on one core in all), on
// shapes that fill a GPU for a few hundred milliseconds for any other.
func MeasureAll(ctx context.Context, b Backend) (Throughput, error) {
	return MeasureAllFor(ctx, b, MeasureShapes{})
}

// MeasureAllFor is MeasureAll with the CPU backend measured on the
// challenges' own K and M (as many rows as keep the work near MeasureAll's).
func MeasureAllFor(ctx context.Context, b Backend, s MeasureShapes) (Throughput, error) {
	int8s, bf16s := s.cpuShapes()
	vram := VRAMParams{Lanes: 256, Blocks: 16, Rounds: 64, Reads: 256}
	if b.Info().Backend != "cpu" {
		int8s, bf16s = Shape{N: 32768, K: 8192, M: 8192}, Shape{N: 32768, K: 4096, M: 4096}
		vram = VRAMParams{Lanes: 1 << 20, Blocks: 64, Rounds: 64, Reads: 64}
	}
	var t Throughput
	var err error
	reps := cmp.Or(s.Reps, 3)
	if b.Info().Backend == "cpu" {
		// Enough rows that the per-row cost, not generating B, sets the
		// rate: with the AVX-512 kernels a 256-row product took about a
		// millisecond, most of it B's, and the rate it gave was a third
		// of a large proof's, so a node claiming 6 times its measured
		// rate answered in about twice its anticipated time, not six.
		if int8s, err = growRows(ctx, int8s, func(sh Shape) (time.Duration, error) {
			_, d, err := MeasureInt8(ctx, b, sh, 1)
			return d, err
		}); err != nil {
			return t, err
		}
		if bf16s, err = growRows(ctx, bf16s, func(sh Shape) (time.Duration, error) {
			_, d, err := MeasureBF16(ctx, b, sh, 1)
			return d, err
		}); err != nil {
			return t, err
		}
	}
	if t.Int8TOPS, _, err = MeasureInt8(ctx, b, int8s, reps); err != nil {
		return t, err
	}
	if t.BF16TFLOPS, _, err = MeasureBF16(ctx, b, bf16s, reps); err != nil {
		return t, err
	}
	if t.HashGHps, _, err = MeasureVRAM(ctx, b, vram, reps); err != nil {
		return t, err
	}
	return t, nil
}

// minMeasure is the shortest product a CPU measurement times (growRows).
const minMeasure = 40 * time.Millisecond

// growRows quadruples sh's rows, timing one run of each size with run,
// until a run takes minMeasure or the rows reach 1<<16, and returns that
// shape.
func growRows(ctx context.Context, sh Shape, run func(Shape) (time.Duration, error)) (Shape, error) {
	for sh.N < 1<<16 {
		d, err := run(sh)
		if err != nil {
			return sh, err
		}
		if d >= minMeasure || ctx.Err() != nil {
			break
		}
		sh.N *= 4
	}
	return sh, nil
}
