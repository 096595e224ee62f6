package gpu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// Known-answer vectors for Philox4x32-10 from Random123's kat_vectors file
// (D. E. Shaw Research): counter, key, expected output.
func TestPhilox4x32KnownAnswers(t *testing.T) {
	cases := []struct {
		name string
		ctr  [4]uint32
		key  [2]uint32
		want [4]uint32
	}{
		{"zeros", [4]uint32{0, 0, 0, 0}, [2]uint32{0, 0}, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{"ones", [4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff}, [4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{"pi", [4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0}, [4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Philox4x32(tc.ctr, tc.key); got != tc.want {
				t.Fatalf("Philox4x32(%08x, %08x) = %08x, want %08x", tc.ctr, tc.key, got, tc.want)
			}
		})
	}
}

func testSeed(b byte) Seed {
	return Seed(sha256.Sum256([]byte{b}))
}

func TestFillRowMatchesInt8At(t *testing.T) {
	seed := testSeed(1)
	row := make([]int8, 37) // not a multiple of 16
	FillInt8Row(row, seed, MatrixB, 5)
	for j, v := range row {
		if w := Int8At(seed, MatrixB, 5, j); v != w {
			t.Fatalf("col %d: FillInt8Row %d, Int8At %d", j, v, w)
		}
	}
	other := make([]int8, 37)
	FillInt8Row(other, seed, MatrixA, 5)
	if string(int8Bytes(row)) == string(int8Bytes(other)) {
		t.Fatal("matrices A and B share a stream")
	}
}

func int8Bytes(v []int8) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	return b
}

// naive computes C[i][j] straight from the definition.
func naive(seed Seed, s Shape, i, j int) int32 {
	var acc int32
	for p := 0; p < s.K; p++ {
		acc += int32(Int8At(seed, MatrixA, i, p)) * int32(Int8At(seed, MatrixB, p, j))
	}
	return acc
}

func TestMatMulInt8MatchesDefinition(t *testing.T) {
	for _, s := range []Shape{{N: 7, K: 33, M: 5}, {N: 16, K: 64, M: 16}, {N: 1, K: 1, M: 1}} {
		seed := testSeed(2)
		c, leaves, err := NewCPU(WithWorkers(3)).MatMulInt8(context.Background(), seed, s)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < s.N; i++ {
			for j := 0; j < s.M; j++ {
				if got, want := c.Row(i)[j], naive(seed, s, i, j); got != want {
					t.Fatalf("%v C[%d][%d] = %d, want %d", s, i, j, got, want)
				}
			}
			if leaves[i] != LeafHash(c.Row(i)) {
				t.Fatalf("leaf %d does not hash row %d", i, i)
			}
		}
	}
}

func TestRowsInt8MatchesFullProduct(t *testing.T) {
	seed := testSeed(3)
	s := Shape{N: 40, K: 48, M: 24}
	cpu := NewCPU()
	full, _, err := cpu.MatMulInt8(context.Background(), seed, s)
	if err != nil {
		t.Fatal(err)
	}
	rows := []int{39, 0, 17, 17, 3}
	part, err := cpu.RowsInt8(context.Background(), seed, s, rows)
	if err != nil {
		t.Fatal(err)
	}
	for r, i := range rows {
		for j := range s.M {
			if part.Row(r)[j] != full.Row(i)[j] {
				t.Fatalf("row %d col %d differs", i, j)
			}
		}
	}
	if _, err := cpu.RowsInt8(context.Background(), seed, s, []int{40}); err == nil {
		t.Fatal("row index n accepted")
	}
}

// TestGoldenInt8 pins the bits of a small product: any backend (and any
// change to the generator) must reproduce this digest of C.
func TestGoldenInt8(t *testing.T) {
	var seed Seed
	copy(seed[:], "poai golden vector int8 v1......")
	c, _, err := NewCPU().MatMulInt8(context.Background(), seed, Shape{N: 64, K: 96, M: 48})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(EncodeInt32Row(c.Data))
	got := hex.EncodeToString(sum[:])
	const want = "51f048f886fdc756e0cc5c410c50f8a9d6d5fa7d8c079aca28b8758420f66ed9"
	if got != want {
		t.Fatalf("golden digest %s, want %s", got, want)
	}
}

func TestShapeValidate(t *testing.T) {
	bad := []Shape{{0, 1, 1}, {1, -1, 1}, {1, MaxK + 1, 1}, {1 << 20, 1 << 13, 1 << 13}}
	for _, s := range bad {
		if s.Validate() == nil {
			t.Errorf("%v accepted", s)
		}
	}
	if err := (Shape{64, MaxK, 64}).Validate(); err != nil {
		t.Errorf("max K rejected: %v", err)
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := NewCPU().MatMulInt8(ctx, testSeed(4), Shape{N: 256, K: 256, M: 256}); err == nil {
		t.Fatal("cancelled product returned no error")
	}
}

func BenchmarkMatMulInt8(b *testing.B) {
	s := Shape{N: 512, K: 512, M: 512}
	cpu := NewCPU()
	b.SetBytes(0)
	for b.Loop() {
		if _, _, err := cpu.MatMulInt8(context.Background(), testSeed(5), s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(s.MACs()*2*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOPS")
}

func BenchmarkPhilox(b *testing.B) {
	var acc uint32
	for i := 0; b.Loop(); i++ {
		acc ^= Philox4x32([4]uint32{uint32(i), 0, 0, 0}, [2]uint32{1, 2})[0]
	}
	_ = acc
}
