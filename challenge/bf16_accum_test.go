package challenge

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// Emulations of the ways a device may accumulate a bf16 dot product. Each
// takes a row a of A and a column b of B (bf16 values widened to float32)
// and returns the float32 result. Products of two bf16 values have at most
// 16 significant bits and sums of them stay within float64's 53, so a
// float64 holds every exact intermediate; only the roundings emulated here
// are applied.
type accumulator struct {
	name string
	dot  func(a, b []float32) float32
}

// rz32 rounds x to float32 toward zero (truncation).
func rz32(x float64) float32 {
	f := float32(x)
	if math.Abs(float64(f)) > math.Abs(x) {
		f = math.Nextafter32(f, 0)
	}
	return f
}

// rn16 rounds x to IEEE binary16 (11-bit significand, subnormals below
// 2^-14), to nearest even. Overflow (above 65504) becomes ±Inf.
func rn16(x float64) float64 {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	_, e := math.Frexp(x) // |x| ∈ [2^(e-1), 2^e)
	ulp := math.Ldexp(1, max(e-1, -14)-10)
	r := math.RoundToEven(x/ulp) * ulp
	if math.Abs(r) > 65504 {
		return math.Inf(int(math.Copysign(1, x)))
	}
	return r
}

// seqRN is the CPU backend's order: index order, float32 round to nearest.
func seqRN(a, b []float32) float32 {
	var acc float32
	for p := range a {
		acc += a[p] * b[p]
	}
	return acc
}

func reverseRN(a, b []float32) float32 {
	var acc float32
	for p := len(a) - 1; p >= 0; p-- {
		acc += a[p] * b[p]
	}
	return acc
}

// blockedRN sums blocks of n products in float32, then the blocks.
func blockedRN(n int) func(a, b []float32) float32 {
	return func(a, b []float32) float32 {
		var acc float32
		for lo := 0; lo < len(a); lo += n {
			acc += seqRN(a[lo:min(lo+n, len(a))], b[lo:min(lo+n, len(a))])
		}
		return acc
	}
}

// splitK computes s contiguous slices of k with dot, then sums them in
// float32.
func splitK(s int, dot func(a, b []float32) float32) func(a, b []float32) float32 {
	return func(a, b []float32) float32 {
		var acc float32
		step := (len(a) + s - 1) / s
		for lo := 0; lo < len(a); lo += step {
			hi := min(lo+step, len(a))
			acc += dot(a[lo:hi], b[lo:hi])
		}
		return acc
	}
}

func pairwise(a, b []float32) float32 {
	if len(a) <= 2 {
		return seqRN(a, b)
	}
	h := len(a) / 2
	return pairwise(a[:h], b[:h]) + pairwise(a[h:], b[h:])
}

// tensorRZ models a tensor core's fp32 accumulation (Fasi, Higham,
// Mikaitis and Pranesh, "Numerical behavior of NVIDIA tensor cores", PeerJ
// Comput. Sci. 7:e330, 2021): each instruction adds n exact products to the
// accumulator and truncates the sum to float32. n = 1 is a truncating
// accumulator per product, worse than any tensor core.
func tensorRZ(n int) func(a, b []float32) float32 {
	return func(a, b []float32) float32 {
		var acc float32
		for lo := 0; lo < len(a); lo += n {
			s := float64(acc)
			for p := lo; p < min(lo+n, len(a)); p++ {
				s += float64(a[p]) * float64(b[p])
			}
			acc = rz32(s)
		}
		return acc
	}
}

// fp16MMA models fp16 tensor-core accumulation: each instruction adds n
// exact products to an fp16 accumulator, rounding the sum to nearest fp16;
// every block products the fp16 accumulator is added to a float32 total
// and restarted. block = len(a) accumulates the whole dot product in fp16.
func fp16MMA(n, block int) func(a, b []float32) float32 {
	return func(a, b []float32) float32 {
		var total float32
		for lo := 0; lo < len(a); lo += block {
			var acc float64
			for c := lo; c < min(lo+block, len(a)); c += n {
				s := acc
				for p := c; p < min(c+n, lo+block, len(a)); p++ {
					s += float64(a[p]) * float64(b[p])
				}
				acc = rn16(s)
			}
			total += float32(acc)
		}
		return total
	}
}

// fmaRN accumulates with a fused multiply-add rounded to float32, as a
// CUDA-core kernel does; the products being exact, it agrees with seqRN.
func fmaRN(a, b []float32) float32 {
	var acc float32
	for p := range a {
		acc = float32(math.FMA(float64(a[p]), float64(b[p]), float64(acc)))
	}
	return acc
}

// honestAccumulators are float32 accumulations a correct GEMM may use.
func honestAccumulators() []accumulator {
	acc := []accumulator{{"sequential (the CPU backend)", seqRN}, {"reverse order", reverseRN},
		{"fp32 FMA", fmaRN}, {"pairwise", pairwise}}
	for _, n := range []int{16, 32, 64, 128, 256} {
		acc = append(acc, accumulator{fmt.Sprintf("blocks of %d, then summed", n), blockedRN(n)})
	}
	for _, s := range []int{2, 4, 8, 16} {
		acc = append(acc, accumulator{fmt.Sprintf("split-K by %d", s), splitK(s, seqRN)})
	}
	acc = append(acc, accumulator{"truncated after every product", tensorRZ(1)})
	for _, n := range []int{4, 8, 16} {
		acc = append(acc, accumulator{fmt.Sprintf("truncated every %d products (tensor core)", n), tensorRZ(n)})
	}
	acc = append(acc, accumulator{"split-K by 4, truncated every product", splitK(4, tensorRZ(1))})
	return acc
}

// fp16Accumulators accumulate in fp16 for blocks of products, then add the
// blocks in float32: what a kernel on fp16-accumulate tensor cores (twice
// the fp32-accumulate rate on GeForce cards) would do to pass as bf16.
func fp16Accumulators(k int) []accumulator {
	acc := []accumulator{{"fp16, one rounding per 8 products (m16n8k8), blocks of 8", fp16MMA(8, 8)}}
	for _, b := range []int{16, 32, 64, 128, 256, k} {
		acc = append(acc, accumulator{fmt.Sprintf("fp16, one rounding per 16 products, blocks of %d", b), fp16MMA(16, b)})
	}
	for _, b := range []int{16, 32, 64, 256} {
		acc = append(acc, accumulator{fmt.Sprintf("fp16, rounding every product, blocks of %d", b), fp16MMA(1, b)})
	}
	return acc
}

// bf16Ks are the inner dimensions a planner may choose: node.Config's
// default BF16K (128), doubled up to MaxBF16K.
var bf16Ks = []int{128, 256, 512, 1024, 2048, MaxBF16K}

// fixedBF16Challenge is bf16Challenge with a fixed seed, so the figures
// the tests log are reproducible; every one of its 66 rows is opened.
func fixedBF16Challenge(t testing.TB, k, m int) (*pb.Challenge, peer.ID) {
	t.Helper()
	challenger, prover := fixedPeer(t, 1), fixedPeer(t, 2)
	at := time.Unix(1_700_000_000, 0)
	ch, _, _ := newChallenge(t, challenger, prover, at)
	ch.Workload = pb.Workload_WORKLOAD_GEMM_BF16
	ch.N, ch.K, ch.M, ch.Openings = 66, uint32(k), uint32(m), 66
	ch.Nonce = bytes.Repeat([]byte{0x17}, 32)
	return ch, prover
}

// emulate computes the bf16 product of seed with dot.
func emulate(t testing.TB, seed gpu.Seed, s gpu.Shape, dot func(a, b []float32) float32) *gpu.Float32Matrix {
	t.Helper()
	bt, err := gpu.NewCPU().TransposedBF16B(context.Background(), seed, s)
	if err != nil {
		t.Fatal(err)
	}
	c := &gpu.Float32Matrix{Rows: s.N, Cols: s.M, Data: make([]float32, s.N*s.M)}
	a := make([]float32, s.K)
	for i := range s.N {
		gpu.FillBF16Row(a, seed, gpu.MatrixBF16A, i)
		for j := range s.M {
			c.Row(i)[j] = dot(a, bt[j*s.K:(j+1)*s.K])
		}
	}
	return c
}

// TestFP32AccumulationPasses: every honest float32 accumulation passes
// with its deviation at most half the tolerance, at every k a planner uses.
// go test -run 'TestFP(32|16)Accumulation' -v ./challenge/ logs the figures
// of docs/soundness.md.
func TestFP32AccumulationPasses(t *testing.T) {
	for _, k := range bf16Ks {
		ch, prover := fixedBF16Challenge(t, k, 32)
		seed, shape := Seed(ch), ShapeOf(ch)
		worst, worstName := 0.0, "all exact"
		for _, ac := range honestAccumulators() {
			res := answerBF16(t, ch, prover, emulate(t, seed, shape, ac.dot))
			if res.Verdict != pb.Verdict_VERDICT_PASS || res.Deviation > 0.5*res.Tolerance {
				t.Errorf("k=%d, %s: verdict %v, deviation %.3g = %.2fx the tolerance %.3g, want ≤ 0.5x",
					k, ac.name, res.Verdict, res.Deviation, res.Deviation/res.Tolerance, res.Tolerance)
			}
			if res.Deviation > worst {
				worst, worstName = res.Deviation, ac.name
			}
		}
		t.Logf("k=%4d: honest worst %.3g = %.3fx the tolerance %.3g (%s)", k, worst, worst/BF16Tolerance(k), BF16Tolerance(k), worstName)
	}
}

// TestFP16AccumulationFails: accumulating in fp16, for any block size, is
// rejected with a deviation at least twice the tolerance, at every k a
// planner uses.
func TestFP16AccumulationFails(t *testing.T) {
	for _, k := range bf16Ks {
		ch, prover := fixedBF16Challenge(t, k, 32)
		seed, shape := Seed(ch), ShapeOf(ch)
		best, bestName := math.Inf(1), ""
		for _, ac := range fp16Accumulators(k) {
			res := answerBF16(t, ch, prover, emulate(t, seed, shape, ac.dot))
			if res.Verdict != pb.Verdict_VERDICT_WRONG_ANSWER || res.Deviation < 2*res.Tolerance {
				t.Errorf("k=%d, %s: verdict %v, deviation %.3g = %.2fx the tolerance %.3g, want ≥ 2x",
					k, ac.name, res.Verdict, res.Deviation, res.Deviation/res.Tolerance, res.Tolerance)
			}
			if testing.Verbose() && k == MaxBF16K {
				t.Logf("k=%d, %s: %.3g = %.2fx", k, ac.name, res.Deviation, res.Deviation/res.Tolerance)
			}
			if res.Deviation < best {
				best, bestName = res.Deviation, ac.name
			}
		}
		t.Logf("k=%4d: fp16 best %.3g = %.2fx the tolerance %.3g (%s)", k, best, best/BF16Tolerance(k), BF16Tolerance(k), bestName)
	}
}

// TestFP32AccumulationTail: the honest float32 accumulations that round
// most, over 40,000 elements at k = MaxBF16K (the tolerance must hold for
// the worst of the up to 66·16,384 elements one opening checks), stay below
// half the tolerance.
func TestFP32AccumulationTail(t *testing.T) {
	if testing.Short() {
		t.Skip("40,000 dot products of 4096")
	}
	const k, rows = MaxBF16K, 200
	ch, _ := fixedBF16Challenge(t, k, rows)
	seed, shape := Seed(ch), ShapeOf(ch)
	shape.N = rows
	bt, err := gpu.NewCPU().TransposedBF16B(context.Background(), seed, shape)
	if err != nil {
		t.Fatal(err)
	}
	a := make([][]float32, rows)
	for i := range a {
		a[i] = make([]float32, k)
		gpu.FillBF16Row(a[i], seed, gpu.MatrixBF16A, i)
	}
	tol := BF16Tolerance(k)
	for _, ac := range []accumulator{{"sequential", seqRN}, {"truncated every product", tensorRZ(1)}, {"truncated every 4 products", tensorRZ(4)}} {
		worst, inexact := 0.0, 0
		for i := range a {
			for j := range rows {
				b := bt[j*k : (j+1)*k]
				var exact, abs float64
				for p := range k {
					exact += float64(a[i][p]) * float64(b[p])
					abs += math.Abs(float64(a[i][p]) * float64(b[p]))
				}
				d := math.Abs(float64(ac.dot(a[i], b))-exact) / abs
				if d > 0 {
					inexact++
				}
				worst = math.Max(worst, d)
			}
		}
		t.Logf("%s: %d of %d elements inexact, worst %.3g = %.3fx the tolerance", ac.name, inexact, rows*rows, worst, worst/tol)
		if worst > 0.5*tol {
			t.Errorf("%s: worst %.3g over half the tolerance %.3g", ac.name, worst, tol)
		}
	}
}
