package gpu

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math"
)

// bf16Product is B of one bf16 product (widened to float32), laid out for
// the CPU's row kernel. Every element of C is accumulated in float32 in
// index order, Σ_{p<k} in turn, whichever kernel runs: products of two
// bf16 values are exact in float32, so a fused multiply-add rounds exactly
// as a multiply then an add, and the AVX-512 kernel (16 columns per
// register, each column's sum still in order of p) gives the bits of the
// portable one. With avx512, B is packed in panels of 64 columns, k rows
// of 64 float32 each (0 past m); without, Bᵀ is held.
type bf16Product struct {
	seed   Seed
	shape  Shape
	avx512 bool
	bt     []float32 // Bᵀ (m×k), portable kernel
	packed []float32 // panels, AVX-512 kernel
}

// prepareBF16 generates B for seed and shape in the layout of the kernel
// c uses.
func (c *CPU) prepareBF16(ctx context.Context, seed Seed, shape Shape) (*bf16Product, error) {
	p := &bf16Product{seed: seed, shape: shape, avx512: c.avx512}
	if !p.avx512 {
		bt, err := c.TransposedBF16B(ctx, seed, shape)
		p.bt = bt
		return p, err
	}
	k, m := shape.K, shape.M
	panels := (m + int8PanelCols - 1) / int8PanelCols
	p.packed = make([]float32, panels*k*int8PanelCols)
	err := c.parallel(ctx, k, 64, func(lo, hi int) {
		row := make([]float32, m)
		for q := lo; q < hi; q++ {
			FillBF16Row(row, seed, MatrixBF16B, q)
			for j0 := 0; j0 < m; j0 += int8PanelCols {
				copy(p.packed[((j0/int8PanelCols)*k+q)*int8PanelCols:], row[j0:min(m, j0+int8PanelCols)])
			}
		}
	})
	return p, err
}

func (p *bf16Product) newWorker() *rowWorker[float32, float32] {
	return newRowWorker[float32, float32](int8BlockRows*p.shape.K, p.shape.M, p.avx512)
}

// block computes the rows rows[0..6) of C into w.c (duplicates allowed).
func (p *bf16Product) block(w *rowWorker[float32, float32], rows *[int8BlockRows]int) {
	k, m := p.shape.K, p.shape.M
	for r, i := range rows {
		FillBF16Row(w.a[r*k:(r+1)*k], p.seed, MatrixBF16A, i)
	}
	if !p.avx512 {
		for r := range rows {
			a := w.a[r*k : (r+1)*k]
			dst := w.c[r]
			for j := range dst {
				b := p.bt[j*k : (j+1)*k]
				b = b[:len(a)]
				var acc float32
				for q, x := range a {
					acc += x * b[q]
				}
				dst[j] = acc
			}
		}
		return
	}
	panel := k * int8PanelCols
	for j0 := 0; j0 < m; j0 += int8PanelCols {
		bf16Kernel(&w.a[0], k, &p.packed[(j0/int8PanelCols)*panel], k, &w.tmp[0])
		n := min(int8PanelCols, m-j0)
		for r := range w.c {
			copy(w.c[r][j0:j0+n], w.tmp[r*int8PanelCols:])
		}
	}
}

// rows computes the count rows rowOf(0), …, rowOf(count−1) of C on c's
// workers (blockRows).
func (p *bf16Product) rows(ctx context.Context, c *CPU, count int, rowOf func(i int) int, emit func(i int, row []float32, w *rowWorker[float32, float32])) error {
	return blockRows(ctx, c, count, rowOf, p.newWorker, p.block, emit)
}

// leafHashFloat32Into returns LeafHashFloat32(row), encoding into buf (len
// ≥ 1+4·len(row)) instead of allocating.
func leafHashFloat32Into(buf []byte, row []float32) [32]byte {
	buf = buf[:1+4*len(row)]
	buf[0] = LeafPrefix
	for i, v := range row {
		binary.LittleEndian.PutUint32(buf[1+4*i:], math.Float32bits(v))
	}
	return sha256.Sum256(buf)
}
