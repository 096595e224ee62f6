package gpu

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Seed is the 256-bit seed of a workload. The challenge package derives it
// from the challenge; gpu only expands it.
type Seed [32]byte

// PhiloxKey returns the Philox key (seed words 0 and 1, little-endian) and
// the stream word (seed word 2) that tags every counter of this seed.
func (s Seed) PhiloxKey() (key [2]uint32, stream uint32) {
	key[0] = binary.LittleEndian.Uint32(s[0:4])
	key[1] = binary.LittleEndian.Uint32(s[4:8])
	return key, binary.LittleEndian.Uint32(s[8:12])
}

// Matrix identifiers used in the Philox counter, so A and B never share a
// stream.
const (
	MatrixA uint32 = 0
	MatrixB uint32 = 1
)

// Shape is the shape of a matrix product C = A·B with A n×k and B k×m.
type Shape struct {
	N, K, M int
}

// MaxK bounds the inner dimension so that int8×int8 products accumulated in
// int32 cannot overflow: |a·b| ≤ 2^14 and 2^14·2^16 = 2^30 < 2^31.
const MaxK = 1 << 16

// ErrShape reports a shape that no backend accepts.
var ErrShape = errors.New("invalid matrix shape")

// Validate returns an error wrapping ErrShape when a dimension is not
// positive, K exceeds MaxK, or the product would not fit in memory
// addressable by int (n·m and n·k, m·k elements).
func (s Shape) Validate() error {
	if s.N <= 0 || s.K <= 0 || s.M <= 0 {
		return fmt.Errorf("%w: %dx%dx%d has a non-positive dimension", ErrShape, s.N, s.K, s.M)
	}
	if s.K > MaxK {
		return fmt.Errorf("%w: k=%d exceeds %d (int32 accumulation could overflow)", ErrShape, s.K, MaxK)
	}
	const maxElems = 1 << 32
	if int64(s.N)*int64(s.M) > maxElems || int64(s.N)*int64(s.K) > maxElems || int64(s.K)*int64(s.M) > maxElems {
		return fmt.Errorf("%w: %dx%dx%d is too large", ErrShape, s.N, s.K, s.M)
	}
	return nil
}

// MaxStreamedRows bounds n for a streamed product: rows are Philox
// counter words (uint32).
const MaxStreamedRows = 1<<32 - 1

// ValidateStreamed is Validate for a product whose A and C are generated
// and hashed chunk by chunk, never held whole (see Streamer): only B
// (k×m) must fit in memory, and n may reach MaxStreamedRows.
func (s Shape) ValidateStreamed() error {
	if s.N <= 0 || s.K <= 0 || s.M <= 0 {
		return fmt.Errorf("%w: %dx%dx%d has a non-positive dimension", ErrShape, s.N, s.K, s.M)
	}
	if s.K > MaxK {
		return fmt.Errorf("%w: k=%d exceeds %d (int32 accumulation could overflow)", ErrShape, s.K, MaxK)
	}
	if int64(s.K)*int64(s.M) > 1<<32 || int64(s.N) > MaxStreamedRows {
		return fmt.Errorf("%w: %dx%dx%d is too large", ErrShape, s.N, s.K, s.M)
	}
	return nil
}

// MACs is the number of multiply-accumulates of the product, n·k·m. An
// operation count in TOPS terms is 2·MACs.
func (s Shape) MACs() float64 { return float64(s.N) * float64(s.K) * float64(s.M) }

// Int8At returns element (row, col) of the int8 matrix identified by matrix
// for seed. Sixteen consecutive columns share one Philox block: counter
// (col/16, row, matrix, stream), key from the seed; byte col%16 of the
// little-endian output words, read as two's complement. This is the
// definition every backend must reproduce.
func Int8At(seed Seed, matrix uint32, row, col int) int8 {
	key, stream := seed.PhiloxKey()
	out := Philox4x32([4]uint32{uint32(col / 16), uint32(row), matrix, stream}, key)
	b := col % 16
	return int8(out[b/4] >> (8 * (b % 4)))
}

// FillInt8Row writes row `row` of the int8 matrix identified by matrix into
// dst (len(dst) columns), using the same definition as Int8At.
func FillInt8Row(dst []int8, seed Seed, matrix uint32, row int) {
	key, stream := seed.PhiloxKey()
	for blk := 0; blk*16 < len(dst); blk++ {
		out := Philox4x32([4]uint32{uint32(blk), uint32(row), matrix, stream}, key)
		base := blk * 16
		for b := 0; b < 16 && base+b < len(dst); b++ {
			dst[base+b] = int8(out[b/4] >> (8 * (b % 4)))
		}
	}
}

// Int32Matrix is a dense row-major matrix of int32, the result C of an
// int8 product.
type Int32Matrix struct {
	Rows, Cols int
	Data       []int32 // len Rows·Cols, row-major
}

// Row returns row i as a slice aliasing the matrix.
func (m *Int32Matrix) Row(i int) []int32 { return m.Data[i*m.Cols : (i+1)*m.Cols] }

// EncodeInt32Row returns the canonical byte encoding of a result row:
// little-endian int32 values, 4 bytes each. Merkle leaves and openings use it.
func EncodeInt32Row(row []int32) []byte {
	out := make([]byte, 4*len(row))
	for i, v := range row {
		binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
	}
	return out
}

// DecodeInt32Row is the inverse of EncodeInt32Row. It returns an error when
// len(b) is not a multiple of 4.
func DecodeInt32Row(b []byte) ([]int32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("row encoding has %d bytes, not a multiple of 4", len(b))
	}
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}
