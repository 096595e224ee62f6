package gpu

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Int8BlockColumns is how many consecutive columns of an int8 matrix one
// Philox block defines (Int8At); BF16BlockColumns the same for bf16
// (BF16Bits). Generating any column set costs one block per row for each
// distinct block the set touches.
const (
	Int8BlockColumns = 16
	BF16BlockColumns = 8
)

// columnBlocks groups cols (each in [0, m)) by Philox block of width w:
// the distinct blocks in ascending order and, for each, the positions in
// cols of its columns with their offsets in the block.
type columnBlock struct {
	blk  int
	pos  []int // index into cols
	offs []int // column − w·blk
}

func columnBlocks(cols []int, m, w int) ([]columnBlock, error) {
	byBlk := map[int]*columnBlock{}
	for i, j := range cols {
		if j < 0 || j >= m {
			return nil, fmt.Errorf("%w: column %d outside [0, %d)", ErrShape, j, m)
		}
		b := byBlk[j/w]
		if b == nil {
			b = &columnBlock{blk: j / w}
			byBlk[j/w] = b
		}
		b.pos = append(b.pos, i)
		b.offs = append(b.offs, j%w)
	}
	out := make([]columnBlock, 0, len(byBlk))
	for _, b := range byBlk {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b columnBlock) int { return a.blk - b.blk })
	return out, nil
}

// colTerm locates one requested column in its Philox block: the block,
// the 32-bit output word and the bit shift of the element in it, and the
// column's position in the caller's list.
type colTerm struct{ blk, word, shift, pos int }

// columnTerms returns cols as terms grouped by block (each block's Philox
// call made once per row when the terms are walked in order), for a
// matrix of m columns whose blocks hold width elements of 32/(width/4)
// bits each.
func columnTerms(cols []int, m, width int) ([]colTerm, error) {
	blocks, err := columnBlocks(cols, m, width)
	if err != nil {
		return nil, err
	}
	perWord := width / 4
	var terms []colTerm
	for _, b := range blocks {
		for i, pos := range b.pos {
			o := b.offs[i]
			terms = append(terms, colTerm{b.blk, o / perWord, (32 / perWord) * (o % perWord), pos})
		}
	}
	return terms, nil
}

// ProjectInt8BColumns returns B_J·r mod 2⁶¹ − 1, a vector of k field
// elements: Σ_{i} B[p, cols[i]]·r[i] for each row p of the int8 matrix B
// (MatrixB, k×m) of seed. It is ProjectInt8B restricted to the columns J =
// cols, and costs k Philox blocks per distinct 16-column block of J plus
// k·|J| field multiply-adds, not k·m. Errors: ErrShape for a bad shape, a
// column outside [0, m) or len(r) ≠ len(cols); ctx.Err() if cancelled.
func (c *CPU) ProjectInt8BColumns(ctx context.Context, seed Seed, shape Shape, cols []int, r []uint64) ([]uint64, error) {
	if err := shape.ValidateStreamed(); err != nil {
		return nil, err
	}
	if len(r) != len(cols) {
		return nil, fmt.Errorf("%w: %d projection weights for %d columns", ErrShape, len(r), len(cols))
	}
	if len(cols) >= 1<<22 {
		return nil, fmt.Errorf("%w: %d columns", ErrShape, len(cols))
	}
	terms, err := columnTerms(cols, shape.M, Int8BlockColumns)
	if err != nil {
		return nil, err
	}
	// Each column's weight split in 32 low and 29 high bits: Σ v·r_lo and
	// Σ v·r_hi stay below 2^61 (|v| ≤ 128, fewer than 2^22 terms), as
	// ToField61 needs, and the sum is reduced once per row of B.
	wLo, wHi := make([]int64, len(terms)), make([]int64, len(terms))
	for i, t := range terms {
		wLo[i], wHi[i] = int64(r[t.pos]&(1<<32-1)), int64(r[t.pos]>>32)
	}
	key, stream := seed.PhiloxKey()
	sched := NewPhiloxSchedule(key)
	out := make([]uint64, shape.K)
	err = c.parallel(ctx, shape.K, 256, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			var sLo, sHi int64
			var w [4]uint32
			last := -1
			for i, t := range terms {
				if t.blk != last {
					w, last = sched.Block([4]uint32{uint32(t.blk), uint32(p), MatrixB, stream}), t.blk
				}
				v := int64(int8(w[t.word] >> t.shift))
				sLo += v * wLo[i]
				sHi += v * wHi[i]
			}
			acc := MulMod61(ToField61(sHi), 1<<32) + ToField61(sLo)
			if acc >= FreivaldsPrime {
				acc -= FreivaldsPrime
			}
			out[p] = acc
		}
	})
	return out, err
}

// ElementsInt8 returns the exact elements C[rows[a], cols[b]] of the int8
// product C = A·B of seed, as a len(rows)×len(cols) matrix (row-major):
// k·len(rows)·len(cols) multiply-adds and k Philox blocks per distinct
// 16-column block of cols, never the whole of B. Errors as
// ProjectInt8BColumns, and for a row outside [0, n).
func (c *CPU) ElementsInt8(ctx context.Context, seed Seed, shape Shape, rows, cols []int) (*Int32Matrix, error) {
	if err := checkRows(shape, rows); err != nil {
		return nil, err
	}
	terms, err := columnTerms(cols, shape.M, Int8BlockColumns)
	if err != nil {
		return nil, err
	}
	key, stream := seed.PhiloxKey()
	sched := NewPhiloxSchedule(key)
	a := make([][]int8, len(rows))
	for x, i := range rows {
		a[x] = make([]int8, shape.K)
		FillInt8Row(a[x], seed, MatrixA, i)
	}
	out := &Int32Matrix{Rows: len(rows), Cols: len(cols), Data: make([]int32, len(rows)*len(cols))}
	col := make([]int32, len(cols)) // B[p, cols]
	for p := 0; p < shape.K; p++ {
		if p%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		last := -1
		var w [4]uint32
		for _, t := range terms {
			if t.blk != last {
				w, last = sched.Block([4]uint32{uint32(t.blk), uint32(p), MatrixB, stream}), t.blk
			}
			col[t.pos] = int32(int8(w[t.word] >> t.shift))
		}
		for x := range rows {
			ap := int32(a[x][p])
			if ap == 0 {
				continue
			}
			dst := out.Data[x*len(cols) : (x+1)*len(cols)]
			for i, v := range col {
				dst[i] += ap * v
			}
		}
	}
	return out, nil
}

// ElementsBF16Exact returns the elements C[rows[a], cols[b]] of the bf16
// product C = A·B of seed computed exactly, each times 2^16. Every bf16
// input is a multiple of 2^-8 with |x| < 2 (BF16Bits), so every product
// a·b is a multiple of 2^-16 below 4 in magnitude and every partial sum a
// multiple of 2^-16 below 4k: float64 (53-bit significand) adds them
// without rounding for any k < 2^35, and the result, times 2^16, is an
// integer. Unlike a device's fp32 answer it does not depend on the order
// of accumulation, so every machine gets the same bits. Beside each
// element it returns the scale Σ_p |a_ip·b_pj| (as a float64) that
// challenge.BF16Tolerance is relative to: two len(rows)×len(cols)
// matrices, row-major. Cost k·len(rows)·len(cols) multiply-adds and k
// Philox blocks per distinct 8-column block of cols. Errors as
// ElementsInt8.
func (c *CPU) ElementsBF16Exact(ctx context.Context, seed Seed, shape Shape, rows, cols []int) (exact []int64, scale []float64, err error) {
	if err := checkRows(shape, rows); err != nil {
		return nil, nil, err
	}
	terms, err := columnTerms(cols, shape.M, BF16BlockColumns)
	if err != nil {
		return nil, nil, err
	}
	key, stream := seed.PhiloxKey()
	sched := NewPhiloxSchedule(key)
	a := make([][]float32, len(rows))
	for x, i := range rows {
		a[x] = make([]float32, shape.K)
		FillBF16Row(a[x], seed, MatrixBF16A, i)
	}
	sum := make([]float64, len(rows)*len(cols))
	scale = make([]float64, len(rows)*len(cols))
	col := make([]float64, len(cols)) // B[p, cols]
	for p := 0; p < shape.K; p++ {
		if p%4096 == 0 && ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		last := -1
		var w [4]uint32
		for _, t := range terms {
			if t.blk != last {
				w, last = sched.Block([4]uint32{uint32(t.blk), uint32(p), MatrixBF16B, stream}), t.blk
			}
			col[t.pos] = float64(BF16ToFloat32(bf16FromRandom(uint16(w[t.word] >> t.shift))))
		}
		for x := range rows {
			ap := float64(a[x][p])
			base := x * len(cols)
			for i, v := range col {
				prod := ap * v
				sum[base+i] += prod
				scale[base+i] += math.Abs(prod)
			}
		}
	}
	exact = make([]int64, len(sum))
	for i, v := range sum {
		exact[i] = int64(v * (1 << 16))
	}
	return exact, scale, nil
}
