package gpu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/big"
	"slices"
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

// BenchmarkLeavesInt8 commits to a product of the sim's shape (k = m =
// 128, 4,096 rows: about 40 ms of a CPU core); allocs/op should stay a
// handful, not a few per row.
func BenchmarkLeavesInt8(b *testing.B) {
	s := Shape{N: 4096, K: 128, M: 128}
	cpu := NewCPU(WithWorkers(1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cpu.LeavesInt8(context.Background(), testSeed(5), s); err != nil {
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

func TestBF16Generation(t *testing.T) {
	seed := testSeed(6)
	row := make([]float32, 21)
	FillBF16Row(row, seed, MatrixBF16A, 3)
	mantissas := map[uint16]bool{}
	for j, v := range row {
		b := BF16Bits(seed, MatrixBF16A, 3, j)
		if BF16ToFloat32(b) != v {
			t.Fatalf("col %d: FillBF16Row %v, BF16Bits %v", j, v, BF16ToFloat32(b))
		}
		if a := math.Abs(float64(v)); a < 0.5 || a >= 2 {
			t.Fatalf("value %v outside ±[0.5, 2)", v)
		}
		mantissas[b&0x7f] = true
	}
	if len(mantissas) < 10 {
		t.Fatalf("only %d distinct mantissas in 21 values: significand not full", len(mantissas))
	}
}

func TestMatMulBF16NearExact(t *testing.T) {
	seed := testSeed(7)
	s := Shape{N: 9, K: 300, M: 7}
	c, leaves, err := NewCPU().MatMulBF16(context.Background(), seed, s)
	if err != nil {
		t.Fatal(err)
	}
	for i := range s.N {
		for j := range s.M {
			var exact, abs float64
			for p := range s.K {
				prod := float64(BF16ToFloat32(BF16Bits(seed, MatrixBF16A, i, p))) * float64(BF16ToFloat32(BF16Bits(seed, MatrixBF16B, p, j)))
				exact += prod
				abs += math.Abs(prod)
			}
			if d := math.Abs(float64(c.Row(i)[j])-exact) / abs; d > float64(s.K)/(1<<24) {
				t.Fatalf("C[%d][%d] = %v, exact %v: relative error %g beyond the fp32 bound", i, j, c.Row(i)[j], exact, d)
			}
		}
		if leaves[i] != LeafHashFloat32(c.Row(i)) {
			t.Fatalf("leaf %d", i)
		}
	}
}

// TestGoldenBF16 pins the bf16 inputs (bit-exact on every backend) and the
// CPU backend's product (other backends agree within
// challenge.BF16Tolerance, not bit for bit).
func TestGoldenBF16(t *testing.T) {
	var seed Seed
	copy(seed[:], "poai golden vector bf16 v1......")
	s := Shape{N: 64, K: 96, M: 48}
	h := sha256.New()
	for i := range s.N {
		for p := range s.K {
			b := BF16Bits(seed, MatrixBF16A, i, p)
			h.Write([]byte{byte(b), byte(b >> 8)})
		}
	}
	inputs := hex.EncodeToString(h.Sum(nil))
	c, _, err := NewCPU().MatMulBF16(context.Background(), seed, s)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(EncodeFloat32Row(c.Data))
	product := hex.EncodeToString(sum[:])
	const wantInputs, wantProduct = "39d0339376b7d994375e02dc1624f2d190de167fe50df8948ea86836824dddcc", "47b45baa897ae7ac95b465fdd6864cb39eedebd986fb8e53005523ce0d1b4906"
	if inputs != wantInputs || product != wantProduct {
		t.Fatalf("golden bf16 inputs %s product %s", inputs, product)
	}
}

func TestMulMod61(t *testing.T) {
	p := new(big.Int).SetUint64(FreivaldsPrime)
	for _, pair := range [][2]uint64{{0, 5}, {1, FreivaldsPrime - 1}, {FreivaldsPrime - 1, FreivaldsPrime - 1}, {1 << 60, 1<<60 + 12345}, {123456789123, 987654321987}} {
		want := new(big.Int).Mul(new(big.Int).SetUint64(pair[0]), new(big.Int).SetUint64(pair[1]))
		want.Mod(want, p)
		if got := MulMod61(pair[0], pair[1]); got != want.Uint64() {
			t.Fatalf("%d·%d mod p = %d, want %d", pair[0], pair[1], got, want)
		}
	}
	if ToField61(-1) != FreivaldsPrime-1 || ToField61(7) != 7 {
		t.Fatal("ToField61")
	}
}

func TestProjectInt8B(t *testing.T) {
	seed := testSeed(8)
	s := Shape{N: 4, K: 19, M: 23}
	r := make([]uint64, s.M)
	for j := range r {
		r[j] = uint64(j*j+1) * 1_000_003
	}
	got, err := NewCPU().ProjectInt8B(context.Background(), seed, s, r)
	if err != nil {
		t.Fatal(err)
	}
	p := new(big.Int).SetUint64(FreivaldsPrime)
	for k := range s.K {
		acc := new(big.Int)
		for j := range s.M {
			acc.Add(acc, new(big.Int).Mul(big.NewInt(int64(Int8At(seed, MatrixB, k, j))), new(big.Int).SetUint64(r[j])))
		}
		acc.Mod(acc, p)
		if got[k] != acc.Uint64() {
			t.Fatalf("(B·r)[%d] = %d, want %d", k, got[k], acc)
		}
	}
}

// TestGeneratorHasNoStructure: the challenge matrices must not let a CPU
// shortcut the product. A Hankel or Toeplitz matrix repeats along
// anti-diagonals or diagonals, and a low-rank one has dependent rows; a
// 48×48 block of A over GF(2^61−1) must have full rank and no diagonal may
// repeat more than chance allows.
func TestGeneratorHasNoStructure(t *testing.T) {
	seed := testSeed(9)
	const n = 48
	m := make([][]uint64, n)
	diag, anti := 0, 0
	for i := range m {
		m[i] = make([]uint64, n)
		for j := range m[i] {
			m[i][j] = ToField61(int64(Int8At(seed, MatrixA, i, j)))
			if i > 0 && j > 0 && Int8At(seed, MatrixA, i, j) == Int8At(seed, MatrixA, i-1, j-1) {
				diag++
			}
			if i > 0 && j+1 < n && Int8At(seed, MatrixA, i, j) == Int8At(seed, MatrixA, i-1, j+1) {
				anti++
			}
		}
	}
	// Independent uniform bytes agree with probability 1/256: about 9 of
	// the 2,209 pairs; a Toeplitz or Hankel matrix would give 2,209.
	if diag > 40 || anti > 40 {
		t.Fatalf("diagonal repeats %d, anti-diagonal repeats %d: structured generator", diag, anti)
	}
	if r := rank61(m); r != n {
		t.Fatalf("48×48 block has rank %d over GF(2^61−1)", r)
	}
}

// rank61 returns the rank of m over GF(2^61 − 1) by Gaussian elimination.
func rank61(m [][]uint64) int {
	inv := func(a uint64) uint64 { // a^(p−2)
		r, e := uint64(1), uint64(FreivaldsPrime-2)
		for ; e > 0; e >>= 1 {
			if e&1 == 1 {
				r = MulMod61(r, a)
			}
			a = MulMod61(a, a)
		}
		return r
	}
	rank := 0
	for col := 0; col < len(m[0]) && rank < len(m); col++ {
		piv := -1
		for r := rank; r < len(m); r++ {
			if m[r][col] != 0 {
				piv = r
				break
			}
		}
		if piv < 0 {
			continue
		}
		m[rank], m[piv] = m[piv], m[rank]
		iv := inv(m[rank][col])
		for r := range m {
			if r == rank || m[r][col] == 0 {
				continue
			}
			f := MulMod61(m[r][col], iv)
			for c := col; c < len(m[r]); c++ {
				m[r][c] = (m[r][c] + FreivaldsPrime - MulMod61(f, m[rank][c])) % FreivaldsPrime
			}
		}
		rank++
	}
	return rank
}

// TestStreamedEqualsWhole checks the streamed CPU path (gpu.Streamer)
// against the whole product: same leaves, same recomputed rows, for shapes
// that span several chunks.
func TestStreamedEqualsWhole(t *testing.T) {
	c := NewCPU()
	ctx := t.Context()
	seed := Seed{3, 1, 4, 1, 5}
	s := Shape{N: 1 << 14 / 8 * 5, K: 64, M: 1 << 10} // 10240 rows: 3 chunks of 4096 rows
	whole, leaves, err := c.MatMulInt8(ctx, seed, s)
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := c.LeavesInt8(ctx, seed, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(streamed) != len(leaves) {
		t.Fatalf("%d streamed leaves, want %d", len(streamed), len(leaves))
	}
	for i := range leaves {
		if streamed[i] != leaves[i] {
			t.Fatalf("int8 leaf %d differs", i)
		}
	}
	odd := Shape{N: 7, K: 13, M: 9} // the last row pairs with itself
	_, oddLeaves, err := c.MatMulInt8(ctx, seed, odd)
	if err != nil {
		t.Fatal(err)
	}
	oddStreamed, err := c.LeavesInt8(ctx, seed, odd)
	if err != nil || !slices.Equal(oddStreamed, oddLeaves) {
		t.Fatalf("odd shape: streamed leaves differ from the whole product's (err %v)", err)
	}
	rows, err := c.RowsInt8(ctx, seed, s, []int{0, 4095, 4096, s.N - 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range []int{0, 4095, 4096, s.N - 1} {
		for j, v := range rows.Row(i) {
			if v != whole.Row(r)[j] {
				t.Fatalf("row %d col %d: %d, want %d", r, j, v, whole.Row(r)[j])
			}
		}
	}
	bs := Shape{N: 9000, K: 32, M: 512}
	_, bleaves, err := c.MatMulBF16(ctx, seed, bs)
	if err != nil {
		t.Fatal(err)
	}
	bstreamed, err := c.LeavesBF16(ctx, seed, bs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range bleaves {
		if bstreamed[i] != bleaves[i] {
			t.Fatalf("bf16 leaf %d differs", i)
		}
	}
	// A streamed shape may exceed what a whole product may hold.
	big := Shape{N: 1 << 30, K: 1 << 16, M: 1 << 13}
	if big.Validate() == nil || big.ValidateStreamed() != nil {
		t.Fatalf("shape %v: whole %v, streamed %v", big, big.Validate(), big.ValidateStreamed())
	}
}

// TestMeasureShapes: a CPU backend is measured on the challenges' own K and
// M, with the rows scaled to keep the work; unset fields keep the defaults.
func TestMeasureShapes(t *testing.T) {
	i8, bf := MeasureShapes{Int8K: 128, Int8M: 128}.cpuShapes()
	if i8 != (Shape{N: 4096, K: 128, M: 128}) || bf != (Shape{N: 512, K: 128, M: 128}) {
		t.Fatalf("shapes %v, %v", i8, bf)
	}
	if i8.MACs() != (Shape{N: 256, K: 512, M: 512}).MACs() {
		t.Fatalf("work changed: %v", i8.MACs())
	}
	i8, bf = MeasureShapes{BF16K: 4096, BF16M: 4096}.cpuShapes()
	if i8 != (Shape{N: 256, K: 512, M: 512}) || bf != (Shape{N: 1, K: 4096, M: 4096}) {
		t.Fatalf("shapes %v, %v", i8, bf)
	}
	tp, err := MeasureAllFor(t.Context(), NewCPU(), MeasureShapes{Int8K: 64, Int8M: 96})
	if err != nil || tp.Int8TOPS <= 0 || tp.BF16TFLOPS <= 0 || tp.HashGHps <= 0 {
		t.Fatalf("measured %+v, %v", tp, err)
	}
}
