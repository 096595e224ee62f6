package gpu

import (
	"context"
	"sync"
)

// int8BlockRows is how many rows of C one kernel call computes: six rows
// of A against a panel of 64 columns keep 24 of the 32 AVX-512 registers
// accumulating (int8Kernel).
const int8BlockRows = 6

// int8PanelCols is the width of one packed panel of B (four 16-lane
// registers of int32).
const int8PanelCols = 64

// int8Product is B of one int8 product, laid out for the CPU's row kernel,
// ready to compute any rows of C = A·B (A generated row by row from the
// seed). With vnni, B is packed for AVX-512 VNNI's VPDPBUSD (unsigned ×
// signed bytes, four per 32-bit lane): panels of 64 columns, and in panel
// p, k-quad q, the 256 bytes hold at 64z + 4l + t the byte
// B[4q+t][64p+16z+l] + 128 (as unsigned; 128 past k or m). Since
// Σ a·(b+128) = Σ a·b + 128·Σ a, each row's result is corrected by
// 128·Σ_k A[i][k]; int32 arithmetic wraps in both the instruction and the
// correction, so the result is exact whenever C fits in int32, as it
// always does (|C| ≤ 128·128·k); the raw sum, at least −128·255·k, does
// not even wrap for k ≤ 2^16. Without vnni, Bᵀ is held and dot2x2
// computes 2×2 blocks: the portable reference.
type int8Product struct {
	seed   Seed
	shape  Shape
	vnni   bool
	bt     []int8 // Bᵀ (m×k), portable kernel
	packed []byte // panels, VNNI kernel
	kq     int    // ⌈k/4⌉
}

// prepareInt8 generates B for seed and shape in the layout of the kernel
// c uses.
func (c *CPU) prepareInt8(ctx context.Context, seed Seed, shape Shape) (*int8Product, error) {
	p := &int8Product{seed: seed, shape: shape, vnni: c.vnni, kq: (shape.K + 3) / 4}
	if !p.vnni {
		bt, err := c.TransposedB(ctx, seed, shape)
		p.bt = bt
		return p, err
	}
	k, m, kq := shape.K, shape.M, p.kq
	panels := (m + int8PanelCols - 1) / int8PanelCols
	p.packed = make([]byte, panels*kq*4*int8PanelCols)
	// One k-quad per step: each step writes its own 256 bytes of every
	// panel, so workers never share a cache line's writes for long.
	err := c.parallel(ctx, kq, 16, func(lo, hi int) {
		row := make([]int8, m)
		for q := lo; q < hi; q++ {
			for t := 0; t < 4; t++ {
				kk := 4*q + t
				if kk >= k {
					for j := 0; j < panels*int8PanelCols; j++ {
						p.packed[p.offset(j, q)+t] = 128
					}
					continue
				}
				FillInt8Row(row, seed, MatrixB, kk)
				for j := 0; j < panels*int8PanelCols; j++ {
					v := byte(128)
					if j < m {
						v = byte(row[j]) ^ 0x80 // b + 128 as an unsigned byte
					}
					p.packed[p.offset(j, q)+t] = v
				}
			}
		}
	})
	return p, err
}

// offset is where column j's four bytes of k-quad q start in p.packed.
func (p *int8Product) offset(j, q int) int {
	panel, l := j/int8PanelCols, j%int8PanelCols
	return (panel*p.kq+q)*4*int8PanelCols + (l/16)*64 + (l%16)*4
}

func (p *int8Product) newWorker() *rowWorker[int8, int32] {
	return newRowWorker[int8, int32](int8BlockRows*4*p.kq, p.shape.M, p.vnni)
}

// block computes the rows rows[0..6) of C into w.c (duplicates allowed).
func (p *int8Product) block(w *rowWorker[int8, int32], rows *[int8BlockRows]int) {
	k, m, lda := p.shape.K, p.shape.M, 4*p.kq
	for r, i := range rows {
		FillInt8Row(w.a[r*lda:r*lda+k], p.seed, MatrixA, i)
	}
	if !p.vnni {
		for r := 0; r < int8BlockRows; r += 2 {
			a0, a1 := w.a[r*lda:r*lda+k], w.a[(r+1)*lda:(r+1)*lda+k]
			c0, c1 := w.c[r], w.c[r+1]
			j := 0
			for ; j+1 < m; j += 2 {
				c0[j], c0[j+1], c1[j], c1[j+1] = dot2x2(a0, a1, p.bt[j*k:(j+1)*k], p.bt[(j+1)*k:(j+2)*k])
			}
			if j < m {
				c0[j], _, c1[j], _ = dot2x2(a0, a1, p.bt[j*k:(j+1)*k], p.bt[j*k:(j+1)*k])
			}
		}
		return
	}
	var corr [int8BlockRows]int32
	for r := range corr {
		var s int32
		for _, v := range w.a[r*lda : r*lda+k] {
			s += int32(v)
		}
		corr[r] = 128 * s
	}
	panel := p.kq * 4 * int8PanelCols
	for j0 := 0; j0 < m; j0 += int8PanelCols {
		int8Kernel(&w.a[0], lda, &p.packed[(j0/int8PanelCols)*panel], p.kq, &w.tmp[0])
		n := min(int8PanelCols, m-j0)
		for r := range w.c {
			t := w.tmp[r*int8PanelCols : r*int8PanelCols+n]
			c := w.c[r][j0 : j0+n]
			for l := range c {
				c[l] = t[l] - corr[r]
			}
		}
	}
}

// rows computes the count rows rowOf(0), …, rowOf(count−1) of C on c's
// workers (blockRows).
func (p *int8Product) rows(ctx context.Context, c *CPU, count int, rowOf func(i int) int, emit func(i int, row []int32, w *rowWorker[int8, int32])) error {
	return blockRows(ctx, c, count, rowOf, p.newWorker, p.block, emit)
}

// rowWorker is one worker's scratch for a row kernel: the block's rows of
// A, its rows of C, the kernel's output block and a leaf-encoding buffer.
type rowWorker[A int8 | float32, C int32 | float32] struct {
	a   []A
	c   [int8BlockRows][]C
	tmp []C    // int8BlockRows·int8PanelCols, AVX-512 kernels only
	buf []byte // 1 + 4·m bytes, for the leaf encoding
}

func newRowWorker[A int8 | float32, C int32 | float32](aLen, m int, avx512 bool) *rowWorker[A, C] {
	w := &rowWorker[A, C]{a: make([]A, aLen), buf: make([]byte, 1+4*m)}
	for r := range w.c {
		w.c[r] = make([]C, m)
	}
	if avx512 {
		w.tmp = make([]C, int8BlockRows*int8PanelCols)
	}
	return w
}

// blockRows computes the count rows rowOf(0), …, rowOf(count−1) of a
// product on c's workers, six at a time (block, on a worker from
// newWorker; the last block repeats its last row), calling emit(i,
// C[rowOf(i)], w) for each from the worker that computed it; the row is
// w's and reused once emit returns.
func blockRows[A int8 | float32, C int32 | float32](ctx context.Context, c *CPU, count int, rowOf func(i int) int,
	newWorker func() *rowWorker[A, C], block func(*rowWorker[A, C], *[int8BlockRows]int), emit func(i int, row []C, w *rowWorker[A, C])) error {
	blocks := (count + int8BlockRows - 1) / int8BlockRows
	chunk := max(1, min(16, blocks/(4*c.workers)))
	// Workers' scratch is reused across chunks: a proof allocates B, the
	// leaves and a few buffers per worker, nothing per row or chunk (on a
	// machine running many nodes, poai-sim, per-row buffers were most of
	// the garbage, and the collector's mark phases stalled every proof).
	pool := sync.Pool{New: func() any { return newWorker() }}
	return c.parallel(ctx, blocks, chunk, func(lo, hi int) {
		w := pool.Get().(*rowWorker[A, C])
		defer pool.Put(w)
		var idx [int8BlockRows]int
		for b := lo; b < hi; b++ {
			for r := range idx {
				idx[r] = rowOf(min(b*int8BlockRows+r, count-1))
			}
			block(w, &idx)
			for r := 0; r < int8BlockRows && b*int8BlockRows+r < count; r++ {
				emit(b*int8BlockRows+r, w.c[r], w)
			}
		}
	})
}
