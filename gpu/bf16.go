package gpu

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
)

// Matrix identifiers of the bf16 workload, distinct from the int8 ones so
// no two workloads share a Philox stream.
const (
	MatrixBF16A uint32 = 2
	MatrixBF16B uint32 = 3
)

// BF16Bits returns element (row, col) of the bf16 matrix identified by
// matrix for seed, as its 16 bits. Eight consecutive columns share one
// Philox block: counter (col/8, row, matrix, stream); element col%8 takes
// the 16-bit half col%2 of output word (col%8)/2. From those 16 random bits
// r it builds a real value with the full 8-bit significand: sign = bit 15,
// exponent 126 + bit 14 (so |x| ∈ [0.5, 2)), mantissa = bits 0–6. No
// integer or low-precision format represents these values exactly, so an
// answer computed from int8 or fp8 copies of the inputs carries their
// rounding error (see challenge.BF16Tolerance).
func BF16Bits(seed Seed, matrix uint32, row, col int) uint16 {
	key, stream := seed.PhiloxKey()
	out := Philox4x32([4]uint32{uint32(col / 8), uint32(row), matrix, stream}, key)
	e := col % 8
	return bf16FromRandom(uint16(out[e/2] >> (16 * (e % 2))))
}

func bf16FromRandom(r uint16) uint16 {
	sign := r & 0x8000
	exp := uint16(126) + (r>>14)&1
	return sign | exp<<7 | r&0x7f
}

// BF16ToFloat32 widens a bf16 bit pattern to float32 (exact).
func BF16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// FillBF16Row writes row `row` of the bf16 matrix identified by matrix,
// widened to float32, into dst, using the same definition as BF16Bits.
func FillBF16Row(dst []float32, seed Seed, matrix uint32, row int) {
	key, stream := seed.PhiloxKey()
	for blk := 0; blk*8 < len(dst); blk++ {
		out := Philox4x32([4]uint32{uint32(blk), uint32(row), matrix, stream}, key)
		base := blk * 8
		for e := 0; e < 8 && base+e < len(dst); e++ {
			dst[base+e] = BF16ToFloat32(bf16FromRandom(uint16(out[e/2] >> (16 * (e % 2)))))
		}
	}
}

// Float32Matrix is a dense row-major matrix of float32, the result C of a
// bf16 product.
type Float32Matrix struct {
	Rows, Cols int
	Data       []float32 // len Rows·Cols, row-major
}

// Row returns row i as a slice aliasing the matrix.
func (m *Float32Matrix) Row(i int) []float32 { return m.Data[i*m.Cols : (i+1)*m.Cols] }

// EncodeFloat32Row returns the canonical encoding of a bf16-product row:
// the IEEE 754 bits of each value, little-endian, 4 bytes each.
func EncodeFloat32Row(row []float32) []byte {
	out := make([]byte, 4*len(row))
	for i, v := range row {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

// DecodeFloat32Row is the inverse of EncodeFloat32Row.
func DecodeFloat32Row(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("row encoding has %d bytes, not a multiple of 4", len(b))
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

// LeafHashFloat32 returns SHA-256(0x00 || EncodeFloat32Row(row)), the
// Merkle leaf of one bf16-product row.
func LeafHashFloat32(row []float32) [32]byte { return leafHashBytes(EncodeFloat32Row(row)) }

// TransposedBF16B returns Bᵀ (m×k) of the bf16 workload widened to float32.
func (c *CPU) TransposedBF16B(ctx context.Context, seed Seed, shape Shape) ([]float32, error) {
	bt := make([]float32, shape.M*shape.K)
	err := c.parallel(ctx, shape.K, 64, func(lo, hi int) {
		row := make([]float32, shape.M)
		for p := lo; p < hi; p++ {
			FillBF16Row(row, seed, MatrixBF16B, p)
			for j, v := range row {
				bt[j*shape.K+p] = v
			}
		}
	})
	return bt, err
}

// MatMulBF16 implements Backend: C = A·B for the bf16 matrices of seed,
// each dot product accumulated in float32 in index order. Products of two
// bf16 values are exact in float32, so the only rounding is the
// accumulation's; other backends accumulate in another order and agree
// within challenge.BF16Tolerance, not bit for bit.
func (c *CPU) MatMulBF16(ctx context.Context, seed Seed, shape Shape) (*Float32Matrix, [][32]byte, error) {
	if err := shape.Validate(); err != nil {
		return nil, nil, err
	}
	rows := make([]int, shape.N)
	for i := range rows {
		rows[i] = i
	}
	out, err := c.RowsBF16(ctx, seed, shape, rows)
	if err != nil {
		return nil, nil, err
	}
	leaves := make([][32]byte, shape.N)
	err = c.parallel(ctx, shape.N, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			leaves[i] = LeafHashFloat32(out.Row(i))
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return out, leaves, nil
}

// RowsBF16 computes only the listed rows of the bf16 product (see
// MatMulBF16).
func (c *CPU) RowsBF16(ctx context.Context, seed Seed, shape Shape, rows []int) (*Float32Matrix, error) {
	if err := checkRows(shape, rows); err != nil {
		return nil, err
	}
	p, err := c.prepareBF16(ctx, seed, shape)
	if err != nil {
		return nil, err
	}
	out := &Float32Matrix{Rows: len(rows), Cols: shape.M, Data: make([]float32, len(rows)*shape.M)}
	err = p.rows(ctx, c, len(rows), func(i int) int { return rows[i] }, func(i int, row []float32, _ *rowWorker[float32, float32]) {
		copy(out.Row(i), row)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FillBF16BitsRow writes row `row` of the bf16 matrix identified by matrix
// into dst as bf16 bit patterns (what a device holds), using the same
// definition as BF16Bits.
func FillBF16BitsRow(dst []uint16, seed Seed, matrix uint32, row int) {
	key, stream := seed.PhiloxKey()
	for blk := 0; blk*8 < len(dst); blk++ {
		out := Philox4x32([4]uint32{uint32(blk), uint32(row), matrix, stream}, key)
		base := blk * 8
		for e := 0; e < 8 && base+e < len(dst); e++ {
			dst[base+e] = bf16FromRandom(uint16(out[e/2] >> (16 * (e % 2))))
		}
	}
}
