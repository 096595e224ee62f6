package challenge

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

func bf16Challenge(t testing.TB, n, k, m int) (*pb.Challenge, peer.ID) {
	t.Helper()
	prover := newPeer(t)
	ch, _, _ := newChallenge(t, newPeer(t), prover, time.Now())
	ch.Workload = pb.Workload_WORKLOAD_GEMM_BF16
	ch.N, ch.K, ch.M = uint32(n), uint32(k), uint32(m)
	ch.Openings = uint32(min(66, n))
	return ch, prover
}

// answerBF16 commits to c and verifies the opening.
func answerBF16(t *testing.T, ch *pb.Challenge, prover peer.ID, c *gpu.Float32Matrix) Result {
	t.Helper()
	_, chCID, _ := MessageCID(ch)
	leaves := make([][32]byte, c.Rows)
	for i := range leaves {
		leaves[i] = gpu.LeafHashFloat32(c.Row(i))
	}
	com, op, err := oneShot(ch)(CommitBF16(ch, chCID, prover, c, leaves))
	if err != nil {
		t.Fatal(err)
	}
	_, comCID, _ := MessageCID(com)
	res, err := Verify(context.Background(), gpu.NewCPU(), ch, chCID, com, comCID, op, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestBF16HonestPasses(t *testing.T) {
	ch, prover := bf16Challenge(t, 80, 256, 32)
	_, chCID, _ := MessageCID(ch)
	com, op, err := Prove(context.Background(), gpu.NewCPU(), ch, chCID, prover, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	_, comCID, _ := MessageCID(com)
	res, err := Verify(context.Background(), gpu.NewCPU(), ch, chCID, com, comCID, op, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != pb.Verdict_VERDICT_PASS || res.Accuracy != 1 || res.Deviation > res.Tolerance {
		t.Fatalf("honest bf16: %+v", res)
	}
	t.Logf("honest fp32 accumulation: deviation %.3g, tolerance %.3g (%.0fx margin)", res.Deviation, res.Tolerance, res.Tolerance/res.Deviation)
}

// exact returns the bf16 product computed in float64 from inputs passed
// through q, then rounded to float32: a prover that used cheaper input
// formats but otherwise did everything right.
func exact(seed gpu.Seed, s gpu.Shape, q func(float32) float32) *gpu.Float32Matrix {
	c := &gpu.Float32Matrix{Rows: s.N, Cols: s.M, Data: make([]float32, s.N*s.M)}
	b := make([][]float32, s.K)
	for p := range b {
		b[p] = make([]float32, s.M)
		gpu.FillBF16Row(b[p], seed, gpu.MatrixBF16B, p)
	}
	a := make([]float32, s.K)
	for i := range s.N {
		gpu.FillBF16Row(a, seed, gpu.MatrixBF16A, i)
		for j := range s.M {
			var acc float64
			for p := range s.K {
				acc += float64(q(a[p])) * float64(q(b[p][j]))
			}
			c.Row(i)[j] = float32(acc)
		}
	}
	return c
}

// roundMantissa rounds x to the given number of explicit mantissa bits
// (round to nearest even), as a narrower float format would store it.
func roundMantissa(bits int) func(float32) float32 {
	return func(x float32) float32 {
		drop := 23 - bits
		u := math.Float32bits(x)
		half := uint32(1) << (drop - 1)
		lsb := (u >> drop) & 1
		u = (u + half - 1 + lsb) &^ (1<<drop - 1)
		return math.Float32frombits(u)
	}
}

// int8Quant is symmetric int8 quantization with one scale for the value
// range [-2, 2): q = round(x·63.5), x' = q/63.5.
func int8Quant(x float32) float32 {
	q := math.Round(float64(x) * 63.5)
	q = math.Max(-127, math.Min(127, q))
	return float32(q / 63.5)
}

func TestCheaperArithmeticFails(t *testing.T) {
	ch, prover := bf16Challenge(t, 70, 1024, 16)
	seed, shape := Seed(ch), ShapeOf(ch)
	identity := func(x float32) float32 { return x }
	if res := answerBF16(t, ch, prover, exact(seed, shape, identity)); res.Verdict != pb.Verdict_VERDICT_PASS {
		t.Fatalf("exact answer rejected: %+v", res)
	}
	for _, tc := range []struct {
		name string
		q    func(float32) float32
	}{
		{"int8 quantization", int8Quant},
		{"fp8 e4m3 inputs (3 mantissa bits, 4 fewer)", roundMantissa(3)},
		{"fp8 e5m2 inputs (2 mantissa bits)", roundMantissa(2)},
		{"inputs rounded to 4 fewer significand bits", roundMantissa(7 - 4)},
		{"inputs rounded to 1 fewer significand bit", roundMantissa(7 - 1)},
	} {
		res := answerBF16(t, ch, prover, exact(seed, shape, tc.q))
		t.Logf("%s: verdict %v, deviation %.3g = %.1fx the tolerance %.3g", tc.name, res.Verdict, res.Deviation, res.Deviation/res.Tolerance, res.Tolerance)
		if res.Verdict != pb.Verdict_VERDICT_WRONG_ANSWER || res.Deviation <= res.Tolerance {
			t.Errorf("%s passed: %+v", tc.name, res)
		}
	}
}

func TestBF16Perturbation(t *testing.T) {
	ch, prover := bf16Challenge(t, 66, 512, 16)
	ch.Openings = 66 // every row is opened
	seed, shape := Seed(ch), ShapeOf(ch)
	tol := BF16Tolerance(shape.K)
	// |a·b| sums of a row: the scale of the relative deviation.
	abs := func(i, j int) float64 {
		var s float64
		for p := range shape.K {
			s += math.Abs(float64(gpu.BF16ToFloat32(gpu.BF16Bits(seed, gpu.MatrixBF16A, i, p))) * float64(gpu.BF16ToFloat32(gpu.BF16Bits(seed, gpu.MatrixBF16B, p, j))))
		}
		return s
	}
	for _, f := range []float64{0.5, 3} {
		c, _, err := gpu.NewCPU().MatMulBF16(context.Background(), seed, shape)
		if err != nil {
			t.Fatal(err)
		}
		c.Row(10)[3] += float32(f * tol * abs(10, 3))
		res := answerBF16(t, ch, prover, c)
		if pass := res.Verdict == pb.Verdict_VERDICT_PASS; pass != (f < 1) {
			t.Errorf("perturbation of %.1fx the tolerance: %+v", f, res)
		}
	}
}

// TestSamplingSimulation: a prover that computed 90 % of the rows is caught
// in at least 99.9 % of 2,000 challenges (66 openings: 0.9^66 ≈ 0.095 %
// expected to slip through), and an honest prover is never caught.
func TestSamplingSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 challenges")
	}
	cpu := gpu.NewCPU(gpu.WithWorkers(1))
	var caught, honestCaught int
	const runs = 2000
	// Nonces from a fixed stream, so the run is reproducible: with 0.9^66
	// ≈ 0.095 % per challenge about 2 of 2,000 slip through, and a fresh
	// random run would exceed 2 about a third of the time.
	rng := rand.New(rand.NewChaCha8([32]byte{'p', 'o', 'a', 'i'}))
	prover, challenger := fixedPeer(t, 1), fixedPeer(t, 2)
	ch, _, _ := newChallenge(t, challenger, prover, time.Now())
	ch.N, ch.K, ch.M, ch.Openings = 200, 8, 8, uint32(OpeningsFor(0.9, 0.001))
	ch.Epoch, ch.IssuedUnixMs = 7, 1_700_000_000_000
	for run := range runs {
		ch.Nonce = make([]byte, 32)
		for i := range ch.Nonce {
			ch.Nonce[i] = byte(rng.Uint32())
		}
		_, chCID, _ := MessageCID(ch)
		c, leaves, err := cpu.MatMulInt8(context.Background(), Seed(ch), ShapeOf(ch))
		if err != nil {
			t.Fatal(err)
		}
		if run < 200 { // honest
			com, op, _ := oneShot(ch)(CommitInt8(ch, chCID, prover, c, leaves))
			_, comCID, _ := MessageCID(com)
			if res, _ := Verify(context.Background(), cpu, ch, chCID, com, comCID, op, testSecret); res.Verdict != pb.Verdict_VERDICT_PASS {
				honestCaught++
			}
		}
		for i := 180; i < 200; i++ { // the last 10 % of rows skipped
			c.Row(i)[0]++
			leaves[i] = gpu.LeafHash(c.Row(i))
		}
		com, op, _ := oneShot(ch)(CommitInt8(ch, chCID, prover, c, leaves))
		_, comCID, _ := MessageCID(com)
		if res, _ := Verify(context.Background(), cpu, ch, chCID, com, comCID, op, testSecret); res.Verdict != pb.Verdict_VERDICT_PASS {
			caught++
		}
	}
	t.Logf("90%% prover caught in %d of %d challenges; honest caught %d of 200", caught, runs, honestCaught)
	if float64(caught)/runs < 0.999 || honestCaught != 0 {
		t.Fatalf("caught %d/%d, honest caught %d", caught, runs, honestCaught)
	}
}

func TestLeafHashAgreesWithMerkle(t *testing.T) {
	row := []int32{1, -2, 1 << 30}
	if gpu.LeafHash(row) != merkle.LeafHash(gpu.EncodeInt32Row(row)) {
		t.Fatal("gpu and merkle leaf hashes differ")
	}
	f := []float32{1.5, -0.25}
	if gpu.LeafHashFloat32(f) != merkle.LeafHash(gpu.EncodeFloat32Row(f)) {
		t.Fatal("gpu and merkle float leaf hashes differ")
	}
}

// fixedPeer returns the same peer ID for the same n on every run.
func fixedPeer(t testing.TB, n byte) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{n}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPublicKey(pub)
	return id
}
