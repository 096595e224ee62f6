package gpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestColumnsAgreeWithRows: the column-restricted projection and exact
// elements equal what the whole-matrix definitions give at those columns,
// for columns in any order, repeated, and across Philox blocks.
func TestColumnsAgreeWithRows(t *testing.T) {
	ctx := t.Context()
	cpu := NewCPU(WithWorkers(2))
	seed := Seed{7, 1, 9}
	shape := Shape{N: 40, K: 70, M: 53}
	cols := []int{52, 0, 17, 16, 31, 17, 48}
	rows := []int{39, 0, 12}
	rng := rand.New(rand.NewPCG(1, 2))

	r := make([]uint64, len(cols))
	full := make([]uint64, shape.M)
	for i, j := range cols {
		r[i] = rng.Uint64N(FreivaldsPrime)
		full[j] = (full[j] + r[i]) % FreivaldsPrime
	}
	got, err := cpu.ProjectInt8BColumns(ctx, seed, shape, cols, r)
	if err != nil {
		t.Fatal(err)
	}
	want, err := cpu.ProjectInt8B(ctx, seed, shape, full)
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		if got[p] != want[p] {
			t.Fatalf("B_J·r[%d] = %d, B·r with r zero outside J = %d", p, got[p], want[p])
		}
	}

	c, err := cpu.ElementsInt8(ctx, seed, shape, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := cpu.RowsInt8(ctx, seed, shape, rows)
	if err != nil {
		t.Fatal(err)
	}
	for x := range rows {
		for i, j := range cols {
			if c.Data[x*len(cols)+i] != truth.Row(x)[j] {
				t.Fatalf("C[%d,%d] = %d, want %d", rows[x], j, c.Data[x*len(cols)+i], truth.Row(x)[j])
			}
		}
	}

	exact, scale, err := cpu.ElementsBF16Exact(ctx, seed, shape, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	for x, i := range rows {
		for y, j := range cols {
			var s, a float64
			for p := range shape.K {
				prod := float64(BF16ToFloat32(BF16Bits(seed, MatrixBF16A, i, p))) * float64(BF16ToFloat32(BF16Bits(seed, MatrixBF16B, p, j)))
				s += prod
				a += math.Abs(prod)
			}
			if exact[x*len(cols)+y] != int64(s*(1<<16)) || scale[x*len(cols)+y] != a {
				t.Fatalf("bf16 C[%d,%d]: %d, scale %v; want %d, %v", i, j, exact[x*len(cols)+y], scale[x*len(cols)+y], int64(s*(1<<16)), a)
			}
		}
	}

	if _, err := cpu.ElementsInt8(ctx, seed, shape, rows, []int{shape.M}); err == nil {
		t.Error("a column outside [0, m) was accepted")
	}
	if _, err := cpu.ProjectInt8BColumns(ctx, seed, shape, cols, r[:1]); err == nil {
		t.Error("weights of another length than the columns were accepted")
	}
}

// TestPhiloxSchedule: a precomputed key schedule gives Philox4x32's blocks.
func TestPhiloxSchedule(t *testing.T) {
	key := [2]uint32{0xdeadbeef, 0x12345678}
	s := NewPhiloxSchedule(key)
	for i := range uint32(1000) {
		ctr := [4]uint32{i, i * 7, i ^ 0xffff, 3}
		if s.Block(ctr) != Philox4x32(ctr, key) {
			t.Fatalf("counter %v: schedule %v, Philox4x32 %v", ctr, s.Block(ctr), Philox4x32(ctr, key))
		}
	}
}
