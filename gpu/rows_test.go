package gpu

import (
	"context"
	"fmt"
	"math"
	"testing"
)

// naiveInt8Row is C[i] = A[i]·B computed the plainest way, from the seed.
func naiveInt8Row(seed Seed, shape Shape, i int) []int32 {
	a := make([]int8, shape.K)
	FillInt8Row(a, seed, MatrixA, i)
	c := make([]int32, shape.M)
	b := make([]int8, shape.M)
	for p := 0; p < shape.K; p++ {
		FillInt8Row(b, seed, MatrixB, p)
		for j, v := range b {
			c[j] += int32(a[p]) * int32(v)
		}
	}
	return c
}

// TestInt8KernelsAgree: the VNNI kernel and the portable one give the same
// rows and leaves as the plainest product, on shapes whose k is not a
// multiple of 4, whose m is not a multiple of 64 and whose row count is
// not a multiple of 6, and on a block of extreme values.
func TestInt8KernelsAgree(t *testing.T) {
	kernels := []bool{false}
	if haveVNNI {
		kernels = append(kernels, true)
	} else {
		t.Log("this CPU has no AVX-512 VNNI: only the portable kernel is checked")
	}
	ctx := context.Background()
	for _, shape := range []Shape{{N: 7, K: 5, M: 3}, {N: 13, K: 64, M: 64}, {N: 6, K: 130, M: 65}, {N: 20, K: 257, M: 200}, {N: 1, K: 4, M: 1}} {
		seed := Seed{byte(shape.K), byte(shape.M)}
		for _, vnni := range kernels {
			c := NewCPU(WithWorkers(3))
			c.vnni = vnni
			t.Run(fmt.Sprintf("%dx%dx%d/vnni=%v", shape.N, shape.K, shape.M, vnni), func(t *testing.T) {
				rows := []int{shape.N - 1, 0, shape.N / 2, shape.N - 1}
				got, err := c.RowsInt8(ctx, seed, shape, rows)
				if err != nil {
					t.Fatal(err)
				}
				for r, i := range rows {
					want := naiveInt8Row(seed, shape, i)
					for j := range want {
						if got.Row(r)[j] != want[j] {
							t.Fatalf("row %d col %d: %d, want %d", i, j, got.Row(r)[j], want[j])
						}
					}
				}
				leaves, err := c.LeavesInt8(ctx, seed, shape)
				if err != nil {
					t.Fatal(err)
				}
				for i := range shape.N {
					if leaves[i] != LeafHash(naiveInt8Row(seed, shape, i)) {
						t.Fatalf("leaf %d differs from the plain product's", i)
					}
				}
			})
		}
	}
	if !haveVNNI {
		return
	}
	// Extreme values: A all −128 and B all −128 or 127 give the largest
	// magnitudes the wrapping sums and the 128·ΣA correction must carry.
	for _, bv := range []int8{-128, 127} {
		k := 1 << 12
		p := &int8Product{shape: Shape{N: 6, K: k, M: 64}, vnni: true, kq: k / 4, packed: make([]byte, k*64)}
		for i := range p.packed {
			p.packed[i] = byte(bv) ^ 0x80
		}
		w := p.newWorker()
		for i := range w.a {
			w.a[i] = -128
		}
		int8Kernel(&w.a[0], k, &p.packed[0], p.kq, &w.tmp[0])
		want := int32(k) * -128 * (int32(bv) + 128)
		for l, v := range w.tmp {
			if v != want {
				t.Fatalf("B = %d: lane %d is %d, want %d", bv, l, v, want)
			}
		}
	}
}

// BenchmarkInt8Rows measures the int8 product with each kernel on one
// worker, at the devnet's shape and a larger one, in GOPS (2 ops per MAC);
// B's generation is outside the timing.
func BenchmarkInt8Rows(b *testing.B) {
	for _, shape := range []Shape{{N: 1536, K: 512, M: 512}, {N: 384, K: 4096, M: 4096}} {
		for _, vnni := range []bool{false, true} {
			if vnni && !haveVNNI {
				continue
			}
			name := "portable"
			if vnni {
				name = "vnni"
			}
			b.Run(fmt.Sprintf("%dx%dx%d/%s", shape.N, shape.K, shape.M, name), func(b *testing.B) {
				c := NewCPU(WithWorkers(1))
				c.vnni = vnni
				ctx := context.Background()
				p, err := c.prepareInt8(ctx, Seed{1}, shape)
				if err != nil {
					b.Fatal(err)
				}
				var sink int32
				b.ResetTimer()
				for b.Loop() {
					err := p.rows(ctx, c, shape.N, func(i int) int { return i }, func(i int, row []int32, _ *rowWorker[int8, int32]) { sink += row[0] })
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(2*shape.MACs()*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOPS")
				_ = sink
			})
		}
	}
}

// TestBF16KernelsAgree: the AVX-512 bf16 kernel gives the portable
// kernel's bits (each element summed in float32 in order of p), on shapes
// whose m is not a multiple of 64 and whose row count is not a multiple of
// 6, rows and leaves alike.
func TestBF16KernelsAgree(t *testing.T) {
	if !haveAVX512 {
		t.Skip("this CPU has no AVX-512: only the portable bf16 kernel runs here")
	}
	ctx := context.Background()
	for _, shape := range []Shape{{N: 7, K: 1, M: 1}, {N: 3, K: 2, M: 63}, {N: 8, K: 3, M: 65}, {N: 7, K: 5, M: 3}, {N: 13, K: 64, M: 64},
		{N: 20, K: 257, M: 200}, {N: 9, K: 1000, M: 129}} {
		seed := Seed{byte(shape.K), byte(shape.M), 16}
		portable, simd := NewCPU(WithWorkers(2)), NewCPU(WithWorkers(3))
		portable.avx512, simd.avx512 = false, true
		rows := []int{shape.N - 1, 0, shape.N / 2}
		want, err := portable.RowsBF16(ctx, seed, shape, rows)
		if err != nil {
			t.Fatal(err)
		}
		got, err := simd.RowsBF16(ctx, seed, shape, rows)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range want.Data {
			if math.Float32bits(got.Data[i]) != math.Float32bits(v) {
				t.Fatalf("%v: element %d is %v, portable %v", shape, i, got.Data[i], v)
			}
		}
		// And both are the plainest sum, in order of p.
		a, b := make([]float32, shape.K), make([]float32, shape.M)
		for r, i := range rows {
			FillBF16Row(a, seed, MatrixBF16A, i)
			plain := make([]float32, shape.M)
			for p := range shape.K {
				FillBF16Row(b, seed, MatrixBF16B, p)
				for j := range plain {
					plain[j] += a[p] * b[j]
				}
			}
			for j, v := range plain {
				if math.Float32bits(got.Row(r)[j]) != math.Float32bits(v) {
					t.Fatalf("%v: C[%d][%d] is %v, the plain sum %v", shape, i, j, got.Row(r)[j], v)
				}
			}
		}
		wl, err := portable.LeavesBF16(ctx, seed, shape)
		if err != nil {
			t.Fatal(err)
		}
		gl, err := simd.LeavesBF16(ctx, seed, shape)
		if err != nil {
			t.Fatal(err)
		}
		for i := range wl {
			if wl[i] != gl[i] {
				t.Fatalf("%v: leaf %d differs", shape, i)
			}
		}
	}
}

// BenchmarkBF16Rows measures the bf16 product with each kernel on one
// worker in GFLOPS (2 per MAC); B's generation is outside the timing.
func BenchmarkBF16Rows(b *testing.B) {
	shape := Shape{N: 768, K: 1024, M: 1024}
	for _, simd := range []bool{false, true} {
		if simd && !haveAVX512 {
			continue
		}
		b.Run(map[bool]string{false: "portable", true: "avx512"}[simd], func(b *testing.B) {
			c := NewCPU(WithWorkers(1))
			c.avx512 = simd
			ctx := context.Background()
			p, err := c.prepareBF16(ctx, Seed{1}, shape)
			if err != nil {
				b.Fatal(err)
			}
			var sink float32
			b.ResetTimer()
			for b.Loop() {
				err := p.rows(ctx, c, shape.N, func(i int) int { return i }, func(i int, row []float32, _ *rowWorker[float32, float32]) { sink += row[0] })
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(2*shape.MACs()*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			_ = sink
		})
	}
}
