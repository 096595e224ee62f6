package gpu

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
)

// CPU is the portable backend: it runs every workload with plain Go on all
// cores. It is the reference that device backends must match bit for bit.
type CPU struct {
	workers   int
	maxMemory uint64
	// vnni and avx512 select the AVX-512 int8 (VNNI) and bf16 kernels
	// (int8Product, bf16Product) where the CPU has them; the portable
	// ones otherwise. Both give the same bits.
	vnni, avx512 bool
}

// DefaultCPUMemory bounds the memory one CPU workload may take (8 GiB): a
// challenge sized for a bigger device fails with ErrMemory instead of
// exhausting the host.
const DefaultCPUMemory = 8 << 30

// ErrMemory reports a workload that needs more memory than the backend
// may use.
var ErrMemory = errors.New("workload exceeds the backend's memory")

// WithMaxMemory bounds the memory one workload may take, in bytes.
func WithMaxMemory(b uint64) CPUOption { return func(c *CPU) { c.maxMemory = b } }

// CPUOption configures a CPU backend.
type CPUOption func(*CPU)

// WithWorkers sets the number of worker goroutines (default
// runtime.GOMAXPROCS(0)). Values below 1 are treated as 1.
func WithWorkers(n int) CPUOption {
	return func(c *CPU) { c.workers = max(n, 1) }
}

// NewCPU returns a CPU backend.
func NewCPU(opts ...CPUOption) *CPU {
	c := &CPU{workers: runtime.GOMAXPROCS(0), maxMemory: DefaultCPUMemory, vnni: haveVNNI, avx512: haveAVX512}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Info implements Backend.
func (c *CPU) Info() Info {
	return Info{Backend: "cpu", Model: runtime.GOARCH + " CPU", Devices: c.workers}
}

// parallel runs fn(lo, hi) over [0, n) split into chunks across the workers,
// stopping early when ctx is cancelled.
func (c *CPU) parallel(ctx context.Context, n, chunk int, fn func(lo, hi int)) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
	)
	take := func() (int, int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= n || ctx.Err() != nil {
			return 0, 0, false
		}
		lo := next
		next = min(n, next+chunk)
		return lo, next, true
	}
	for w := 0; w < c.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo, hi, ok := take()
				if !ok {
					return
				}
				fn(lo, hi)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// TransposedB returns Bᵀ (m×k, row j holding column j of B) for seed, so
// that every product row is a series of contiguous dot products.
func (c *CPU) TransposedB(ctx context.Context, seed Seed, shape Shape) ([]int8, error) {
	bt := make([]int8, shape.M*shape.K)
	err := c.parallel(ctx, shape.K, 64, func(lo, hi int) {
		row := make([]int8, shape.M)
		for p := lo; p < hi; p++ {
			FillInt8Row(row, seed, MatrixB, p)
			for j, v := range row {
				bt[j*shape.K+p] = v
			}
		}
	})
	return bt, err
}

// MatMulInt8 implements Backend.
func (c *CPU) MatMulInt8(ctx context.Context, seed Seed, shape Shape) (*Int32Matrix, [][32]byte, error) {
	if err := shape.Validate(); err != nil {
		return nil, nil, err
	}
	rows := make([]int, shape.N)
	for i := range rows {
		rows[i] = i
	}
	out, err := c.RowsInt8(ctx, seed, shape, rows)
	if err != nil {
		return nil, nil, err
	}
	leaves := make([][32]byte, shape.N)
	err = c.parallel(ctx, shape.N, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			leaves[i] = LeafHash(out.Row(i))
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return out, leaves, nil
}

// RowsInt8 computes only the listed rows of C = A·B (see MatMulInt8); row r
// of the result is C[rows[r]]. Verifiers use it to recompute opened rows at
// a cost of O(k·m) per row plus generating B. Every index must lie in
// [0, n).
func (c *CPU) RowsInt8(ctx context.Context, seed Seed, shape Shape, rows []int) (*Int32Matrix, error) {
	if err := checkRows(shape, rows); err != nil {
		return nil, err
	}
	p, err := c.prepareInt8(ctx, seed, shape)
	if err != nil {
		return nil, err
	}
	out := &Int32Matrix{Rows: len(rows), Cols: shape.M, Data: make([]int32, len(rows)*shape.M)}
	err = p.rows(ctx, c, len(rows), func(i int) int { return rows[i] }, func(i int, row []int32, _ *rowWorker[int8, int32]) {
		copy(out.Row(i), row)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkRows validates shape (as streamed: only B is held) and that every
// row index lies in [0, n).
func checkRows(shape Shape, rows []int) error {
	if err := shape.ValidateStreamed(); err != nil {
		return err
	}
	for _, r := range rows {
		if r < 0 || r >= shape.N {
			return fmt.Errorf("%w: row %d outside [0,%d)", ErrShape, r, shape.N)
		}
	}
	return nil
}

// dot2x2 returns the four dot products a0·b0, a0·b1, a1·b0, a1·b1 of int8
// vectors of equal length, accumulated in int32.
func dot2x2(a0, a1, b0, b1 []int8) (c00, c01, c10, c11 int32) {
	n := len(a0)
	a1, b0, b1 = a1[:n], b0[:n], b1[:n]
	for p := 0; p < n; p++ {
		x0, x1 := int32(a0[p]), int32(a1[p])
		y0, y1 := int32(b0[p]), int32(b1[p])
		c00 += x0 * y0
		c01 += x0 * y1
		c10 += x1 * y0
		c11 += x1 * y1
	}
	return
}

var (
	_ Backend  = (*CPU)(nil)
	_ Streamer = (*CPU)(nil)
)

// LeavesInt8 implements Streamer: the leaves of the int8 product, six rows
// at a time, each row hashed as soon as it is computed, so C is never held.
func (c *CPU) LeavesInt8(ctx context.Context, seed Seed, shape Shape) ([][32]byte, error) {
	if err := shape.ValidateStreamed(); err != nil {
		return nil, err
	}
	p, err := c.prepareInt8(ctx, seed, shape)
	if err != nil {
		return nil, err
	}
	// Each worker computes six rows at a time into buffers of its own
	// (blockRows) and hashes them at once.
	leaves := make([][32]byte, shape.N)
	err = p.rows(ctx, c, shape.N, func(i int) int { return i }, func(i int, row []int32, w *rowWorker[int8, int32]) {
		leaves[i] = leafHashInto(w.buf, row)
	})
	if err != nil {
		return nil, err
	}
	return leaves, nil
}

// LeavesBF16 implements Streamer: the leaves of the bf16 product, six rows
// at a time, each row hashed as soon as it is computed.
func (c *CPU) LeavesBF16(ctx context.Context, seed Seed, shape Shape) ([][32]byte, error) {
	if err := shape.ValidateStreamed(); err != nil {
		return nil, err
	}
	p, err := c.prepareBF16(ctx, seed, shape)
	if err != nil {
		return nil, err
	}
	leaves := make([][32]byte, shape.N)
	err = p.rows(ctx, c, shape.N, func(i int) int { return i }, func(i int, row []float32, w *rowWorker[float32, float32]) {
		leaves[i] = leafHashFloat32Into(w.buf, row)
	})
	if err != nil {
		return nil, err
	}
	return leaves, nil
}

// FreivaldsPrime is the Mersenne prime 2^61 − 1, the modulus of the
// random projections verifiers use (Freivalds, "Probabilistic Machines Can
// Use Less Running Time", IFIP 1977).
const FreivaldsPrime = 1<<61 - 1

// MulMod61 returns a·b mod 2^61 − 1 for a, b < 2^61 − 1.
func MulMod61(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	s := (lo & FreivaldsPrime) + (lo>>61 | hi<<3)
	s = (s & FreivaldsPrime) + (s >> 61)
	if s >= FreivaldsPrime {
		s -= FreivaldsPrime
	}
	return s
}

// ToField61 maps v (|v| < 2^61 − 1) to its residue mod 2^61 − 1.
func ToField61(v int64) uint64 {
	if v < 0 {
		return FreivaldsPrime - uint64(-v)
	}
	return uint64(v)
}

// ProjectInt8B returns B·r mod 2^61 − 1 (length k) for the int8 workload's
// B (k×m) of seed and a vector r of m field elements: k·m multiply-adds,
// generating B on the fly, never storing it.
func (c *CPU) ProjectInt8B(ctx context.Context, seed Seed, shape Shape, r []uint64) ([]uint64, error) {
	if err := shape.ValidateStreamed(); err != nil {
		return nil, err
	}
	if len(r) != shape.M {
		return nil, fmt.Errorf("%w: projection vector of %d, want %d", ErrShape, len(r), shape.M)
	}
	out := make([]uint64, shape.K)
	err := c.parallel(ctx, shape.K, 64, func(lo, hi int) {
		row := make([]int8, shape.M)
		for p := lo; p < hi; p++ {
			FillInt8Row(row, seed, MatrixB, p)
			var acc uint64
			for j, v := range row {
				acc += MulMod61(ToField61(int64(v)), r[j])
				if acc >= FreivaldsPrime {
					acc -= FreivaldsPrime
				}
			}
			out[p] = acc
		}
	})
	return out, err
}

// Kernels names the CPU product kernels this machine runs: "avx512-vnni"
// or "portable" for int8, "avx512" or "portable" for bf16 (the portable
// ones give the same bits, slower).
func (c *CPU) Kernels() (forInt8, forBF16 string) {
	forInt8, forBF16 = "portable", "portable"
	if c.vnni {
		forInt8 = "avx512-vnni"
	}
	if c.avx512 {
		forBF16 = "avx512"
	}
	return forInt8, forBF16
}
