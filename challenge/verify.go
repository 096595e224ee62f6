package challenge

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// Result is a verifier's finding on one opening, before timing is taken
// into account.
type Result struct {
	// Verdict is PASS, WRONG_ANSWER or BAD_PROOF.
	Verdict pb.Verdict
	// Accuracy is the fraction of the requested rows that were opened with
	// a valid proof and found correct, in [0,1].
	Accuracy float64
	// Deviation is the largest relative error over the opened elements:
	// for int8, |claimed − true| / max(1, max|true row|), 0 when exact; for
	// bf16, |claimed − true| / Σ_p |a_ip·b_pj| (compare BF16Tolerance). A
	// row that could not be checked (missing, bad proof, not finite)
	// counts 1.
	Deviation float64
	// Tolerance is the largest Deviation a correct answer may have: 0 for
	// int8, BF16Tolerance(k) for bf16.
	Tolerance float64
	// Reason explains a verdict other than PASS.
	Reason string
	// Wrong lists the opened leaves (rows of C, VRAM lanes) found wrong or
	// missing, ascending; nil when all were right.
	Wrong []int
}

// Verify checks an opening against its commitment and challenge, given the
// challenger's revealed secret (which must match the challenge's
// reveal_hash) and the revealed shares of the verifiers the commitment
// lists, in its order (CheckShares): the opened leaves must be exactly those
// SampleRows derives from the committed root, the nonce and
// SamplingSecret(secret, shares), each with a valid Merkle proof; then each opened row
// (GEMM) or lane (VRAM) is checked against the seed.
//
// A GEMM row is checked at the columns J that SampleColumns derives from
// the same root, nonce and randomness (CheckedColumns of them), the same
// for every verifier.
//
// int8: a Freivalds projection over GF(2^61 − 1) with weights r private
// to this verifier: row i is accepted iff Σ_{j∈J} C_ij·r_j = A_i·(B_J·r). A
// row wrong in J passes with probability at most 2^-61 (its difference
// from the true row is a non-zero vector of integers below 2^32, so
// non-zero mod p, and a random r is orthogonal to it with probability
// 1/p). Cost: |J| of B's columns and k·|J| for B_J·r, plus k + |J| per row,
// against the prover's n·k·m. The checked elements of rows found wrong are
// recomputed to report their deviation.
//
// bf16: each opened row is computed exactly at J in float64 (products of
// bf16 values are exact) and every element compared with BF16Tolerance;
// cost s·|J|·k.
//
// VRAM: each opened lane's read chain is rerun, every block it reads
// recomputed on demand; cost s·Reads·(Rounds+1) hashes.
func Verify(ctx context.Context, cpu *gpu.CPU, ch *pb.Challenge, chCID cid.Cid, com *pb.Commitment, comCID cid.Cid, op *pb.Opening, secret []byte, shares ...[]byte) (Result, error) {
	// Verify is public: it checks its challenge itself rather than trust
	// that a validator did.
	if ch.GetOpenings() == 0 {
		return Result{}, fmt.Errorf("%w: challenge opens nothing", ErrMalformed)
	}
	if string(RevealHash(secret)) != string(ch.GetRevealHash()) {
		return Result{}, fmt.Errorf("%w: secret does not match the challenge's reveal hash", ErrMalformed)
	}
	if err := CheckShares(com, shares); err != nil {
		return Result{}, err
	}
	var leaves, width int
	switch ch.GetWorkload() {
	case pb.Workload_WORKLOAD_GEMM_INT8, pb.Workload_WORKLOAD_GEMM_BF16:
		if err := ShapeOf(ch).ValidateStreamed(); err != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		leaves, width = int(ch.GetN()), 4*int(ch.GetM())
	case pb.Workload_WORKLOAD_VRAM:
		if err := VRAMParamsOf(ch).Validate(); err != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		leaves, width = int(ch.GetVramLanes()), gpu.VRAMBlockBytes
	case pb.Workload_WORKLOAD_LLM:
		return verifyLLM(ch, chCID, com, comCID, op, SamplingSecret(secret, shares))
	default:
		return Result{}, fmt.Errorf("%w: cannot verify workload %v", ErrMalformed, ch.GetWorkload())
	}
	want, values, bad, proofErr := opened(ch, chCID, com, comCID, op, SamplingSecret(secret, shares), leaves, width)
	if bad != nil {
		return *bad, nil
	}
	var (
		res   Result
		wrong []int
		err   error
	)
	var cols []int
	if w := ch.GetWorkload(); w == pb.Workload_WORKLOAD_GEMM_INT8 || w == pb.Workload_WORKLOAD_GEMM_BF16 {
		var root merkle.Hash
		copy(root[:], com.GetMerkleRoot())
		m := int(ch.GetM())
		if cols, err = SampleColumns(root, ch.GetNonce(), SamplingSecret(secret, shares), m, CheckedColumns(len(want), m)); err != nil {
			return Result{}, err
		}
	}
	switch ch.GetWorkload() {
	case pb.Workload_WORKLOAD_GEMM_INT8:
		wrong, res.Deviation, err = checkInt8(ctx, cpu, Seed(ch), ShapeOf(ch), want, values, cols)
	case pb.Workload_WORKLOAD_GEMM_BF16:
		res.Tolerance = BF16Tolerance(int(ch.GetK()))
		wrong, res.Deviation, err = checkBF16(ctx, cpu, Seed(ch), ShapeOf(ch), want, values, cols, res.Tolerance)
	case pb.Workload_WORKLOAD_VRAM:
		wrong, res.Deviation, err = checkVRAM(ctx, Seed(ch), VRAMParamsOf(ch), want, values)
	}
	if err != nil {
		return Result{}, fmt.Errorf("recompute: %w", err)
	}
	slices.Sort(wrong)
	res.Accuracy = float64(len(want)-len(wrong)) / float64(len(want))
	res.Wrong = wrong
	switch {
	case proofErr != nil:
		res.Verdict = pb.Verdict_VERDICT_BAD_PROOF
		res.Reason = proofErr.Error()
	case len(wrong) > 0:
		res.Verdict = pb.Verdict_VERDICT_WRONG_ANSWER
		res.Reason = fmt.Sprintf("%s wrong: %d of %d opened (max deviation %.3g, tolerance %.3g)",
			leafList(ch.GetWorkload(), wrong), len(wrong), len(want), res.Deviation, res.Tolerance)
	default:
		res.Verdict = pb.Verdict_VERDICT_PASS
	}
	return res, nil
}

// opened checks an opening's structure: it must name the challenge and
// commitment, open exactly the leaves SampleRows derives from the root,
// the nonce and the sampling randomness, in that order, each with the given width. It returns the
// indices, the values of the leaves whose Merkle proof holds (nil for the
// others, whose errors are joined in proofErr), or a BAD_PROOF result when
// the opening cannot be checked at all.
func opened(ch *pb.Challenge, chCID cid.Cid, com *pb.Commitment, comCID cid.Cid, op *pb.Opening, randomness []byte, leaves, width int) (want []int, values [][]byte, bad *Result, proofErr error) {
	fail := func(format string, a ...any) ([]int, [][]byte, *Result, error) {
		return nil, nil, &Result{Verdict: pb.Verdict_VERDICT_BAD_PROOF, Deviation: 1, Reason: fmt.Sprintf(format, a...)}, nil
	}
	switch {
	case !cidEqual(com.GetChallengeCid(), chCID):
		return fail("commitment names another challenge")
	case !cidEqual(op.GetChallengeCid(), chCID):
		return fail("opening names another challenge")
	case !cidEqual(op.GetCommitmentCid(), comCID):
		return fail("opening names another commitment")
	case com.GetEpoch() != ch.GetEpoch() || op.GetEpoch() != ch.GetEpoch():
		return fail("commitment or opening names epoch %d or %d, challenge %d", com.GetEpoch(), op.GetEpoch(), ch.GetEpoch())
	case string(com.GetProver()) != string(ch.GetTarget()) || string(op.GetProver()) != string(ch.GetTarget()):
		return fail("commitment or opening not authored by the challenge's target")
	case int(com.GetLeaves()) != leaves || leaves <= 0:
		return fail("commitment has %d leaves, challenge has %d", com.GetLeaves(), leaves)
	case len(com.GetMerkleRoot()) != 32:
		return fail("merkle root has %d bytes", len(com.GetMerkleRoot()))
	}
	var root merkle.Hash
	copy(root[:], com.GetMerkleRoot())
	want, err := SampleRows(root, ch.GetNonce(), randomness, leaves, min(int(ch.GetOpenings()), leaves))
	if err != nil {
		return fail("%v", err)
	}
	if len(op.GetRows()) != len(want) {
		return fail("opened %d leaves, %d requested", len(op.GetRows()), len(want))
	}
	values = make([][]byte, len(want))
	for r, ro := range op.GetRows() {
		if int(ro.GetIndex()) != want[r] {
			return fail("leaf %d opened at index %d, Fiat-Shamir says %d", r, ro.GetIndex(), want[r])
		}
		if len(ro.GetValues()) != width {
			proofErr = errors.Join(proofErr, fmt.Errorf("leaf %d: %d bytes, want %d", want[r], len(ro.GetValues()), width))
			continue
		}
		proof := make([]merkle.Hash, len(ro.GetProof()))
		for k, p := range ro.GetProof() {
			if len(p) != 32 {
				return fail("leaf %d: proof hash of %d bytes", want[r], len(p))
			}
			copy(proof[k][:], p)
		}
		if err := merkle.Verify(root, leaves, want[r], merkle.LeafHash(ro.GetValues()), proof); err != nil {
			proofErr = errors.Join(proofErr, fmt.Errorf("leaf %d: %w", want[r], err))
			continue
		}
		values[r] = ro.GetValues()
	}
	return want, values, nil, proofErr
}

// freivaldsKey returns the seed of a verifier's private projection vector:
// fresh from crypto/rand for every verification. Tests may fix it.
var freivaldsKey = func() (key [32]byte) {
	crand.Read(key[:])
	return key
}

// maxRecomputedRows bounds the wrong int8 rows recomputed in full.
const maxRecomputedRows = 4

// FreivaldsColumns is the least number of columns at which a GEMM
// challenge's opened rows are checked: CheckedColumns of them, drawn by
// SampleColumns from the root and the revealed randomness, the same for
// every verifier (so that honest verifiers agree), unknown to the prover
// until its root is fixed. A row is checked at those columns only, so
// verifying generates |J| of B's columns, never the whole of B (k·m
// values, 5.4·10⁸ for the H200 plan). An answer wrong in a fraction g of
// C's elements escapes with probability about (1 − g)^min(openings, |J|)
// (ElementCheckMiss gives the worst arrangement); with |J| ≥ openings that
// is the bound the row sampling alone allows.
const FreivaldsColumns = 64

// CheckedColumns returns how many columns of each opened row are checked
// when openings rows of m columns are opened: max(FreivaldsColumns,
// openings), at most m.
func CheckedColumns(openings, m int) int { return min(m, max(FreivaldsColumns, openings)) }

// freivaldsWeights draws a verifier's private projection weights, n
// elements of GF(2⁶¹ − 1), from a fresh key, and returns the generator,
// which goes on drawing from the same stream.
func freivaldsWeights(n int) ([]uint64, *rand.Rand) {
	rng := rand.New(rand.NewChaCha8(freivaldsKey()))
	r := make([]uint64, n)
	for i := range r {
		r[i] = rng.Uint64N(gpu.FreivaldsPrime)
	}
	return r, rng
}

// freivaldsInt8 checks each opened row (nil: a row that failed its proof)
// at the checked columns cols with the verifier's private weights r: Σ_i C[row,
// cols[i]]·r[i] = A_row·(B_J·r) in GF(2⁶¹ − 1). It returns the positions
// in rows of the rows that fail. Cost: |J| of B's columns (k Philox
// blocks each) and k·|J| multiply-adds for B_J·r, then k + |J| per row.
func freivaldsInt8(ctx context.Context, cpu *gpu.CPU, seed gpu.Seed, shape gpu.Shape, idx []int, rows [][]int32, cols []int, r []uint64) ([]int, error) {
	br, err := cpu.ProjectInt8BColumns(ctx, seed, shape, cols, r)
	if err != nil {
		return nil, err
	}
	// A_i·(B_J·r) with each element of B_J·r split in its low 32 and high
	// 29 bits: Σ a·lo and Σ a·hi stay exact (|a| ≤ 128, k < 2^22: below
	// 2^61, as ToField61 needs) and are reduced once per row.
	if shape.K >= 1<<22 {
		return nil, fmt.Errorf("%w: k = %d", ErrMalformed, shape.K)
	}
	brLo, brHi := make([]int64, len(br)), make([]int64, len(br))
	for p, v := range br {
		brLo[p], brHi[p] = int64(v&(1<<32-1)), int64(v>>32)
	}
	var wrong []int
	a := make([]int8, shape.K)
	for n, row := range rows {
		if row == nil {
			continue
		}
		var lhs uint64
		for i, j := range cols {
			lhs = addMod61(lhs, gpu.MulMod61(gpu.ToField61(int64(row[j])), r[i]))
		}
		gpu.FillInt8Row(a, seed, gpu.MatrixA, idx[n])
		var sLo, sHi int64
		for p, x := range a {
			sLo += int64(x) * brLo[p]
			sHi += int64(x) * brHi[p]
		}
		rhs := addMod61(gpu.MulMod61(gpu.ToField61(sHi), 1<<32), gpu.ToField61(sLo))
		if lhs != rhs {
			wrong = append(wrong, n)
		}
	}
	return wrong, nil
}

// addMod61 returns a + b mod 2⁶¹ − 1 for a, b below it.
func addMod61(a, b uint64) uint64 {
	if a += b; a >= gpu.FreivaldsPrime {
		a -= gpu.FreivaldsPrime
	}
	return a
}

// checkInt8 runs the Freivalds check (freivaldsInt8) on every opened row
// (nil values are rows that failed their proof) and returns the rows
// (leaf indices) wrong or missing and the largest deviation, found by
// computing the checked elements of a few wrong rows exactly.
func checkInt8(ctx context.Context, cpu *gpu.CPU, seed gpu.Seed, shape gpu.Shape, idx []int, values [][]byte, cols []int) ([]int, float64, error) {
	r, _ := freivaldsWeights(len(cols))
	rows := make([][]int32, len(values))
	deviation := 0.0
	var bad []int
	for n, v := range values {
		if v == nil {
			deviation = 1
			bad = append(bad, idx[n])
			continue
		}
		rows[n], _ = gpu.DecodeInt32Row(v)
	}
	wrong, err := freivaldsInt8(ctx, cpu, seed, shape, idx, rows, cols, r)
	if err != nil {
		return nil, 0, err
	}
	for _, n := range wrong {
		bad = append(bad, idx[n])
	}
	// The deviation of a few wrong rows, over the checked columns; the
	// verdict is already decided, so the rest need not cost anything.
	wrong = wrong[:min(len(wrong), maxRecomputedRows)]
	if len(wrong) > 0 {
		at := make([]int, len(wrong))
		for i, n := range wrong {
			at[i] = idx[n]
		}
		truth, err := cpu.ElementsInt8(ctx, seed, shape, at, cols)
		if err != nil {
			return nil, 0, err
		}
		for i, n := range wrong {
			t := truth.Row(i)
			scale := 1.0
			for _, x := range t {
				scale = math.Max(scale, math.Abs(float64(x)))
			}
			for y, j := range cols {
				deviation = math.Max(deviation, math.Abs(float64(rows[n][j])-float64(t[y]))/scale)
			}
		}
	}
	return bad, deviation, nil
}

// checkBF16 computes the opened rows exactly at the checked columns cols
// (SampleColumns) and compares element by element: the deviation |c − t| /
// Σ_p |a_ip·b_pj| must not exceed tol. Cost k·|J| multiply-adds per row
// and |J| of B's columns, never the whole of B. It returns the rows wrong
// or missing and the largest deviation.
func checkBF16(ctx context.Context, cpu *gpu.CPU, seed gpu.Seed, shape gpu.Shape, idx []int, values [][]byte, cols []int, tol float64) ([]int, float64, error) {
	var at, pos, bad []int
	deviation := 0.0
	for n, v := range values {
		if v == nil {
			deviation = 1
			bad = append(bad, idx[n])
			continue
		}
		at, pos = append(at, idx[n]), append(pos, n)
	}
	exact, scale, err := cpu.ElementsBF16Exact(ctx, seed, shape, at, cols)
	if err != nil {
		return nil, 0, err
	}
	for x, n := range pos {
		row, _ := gpu.DecodeFloat32Row(values[n])
		ok := true
		for y, j := range cols {
			c := row[j]
			t := float64(exact[x*len(cols)+y]) / (1 << 16)
			d := math.Abs(float64(c)-t) / math.Max(scale[x*len(cols)+y], math.SmallestNonzeroFloat64)
			if math.IsNaN(d) || math.IsInf(float64(c), 0) {
				d = 1
			}
			deviation = math.Max(deviation, d)
			if d > tol {
				ok = false
			}
		}
		if !ok {
			bad = append(bad, idx[n])
		}
	}
	return bad, deviation, nil
}

// leafList names up to four wrong leaves for a verdict's reason: "rows
// 3, 17 of C" for a product, "lanes 5, 9" for a VRAM proof, ", …" past
// four.
func leafList(w pb.Workload, leaves []int) string {
	noun := "row"
	if w == pb.Workload_WORKLOAD_VRAM {
		noun = "lane"
	}
	if len(leaves) > 1 {
		noun += "s"
	}
	parts := make([]string, 0, 5)
	for _, l := range leaves[:min(len(leaves), 4)] {
		parts = append(parts, strconv.Itoa(l))
	}
	if len(leaves) > 4 {
		parts = append(parts, "…")
	}
	out := noun + " " + strings.Join(parts, ", ")
	if w != pb.Workload_WORKLOAD_VRAM {
		out += " of C"
	}
	return out
}

// ElementCheckMiss returns the probability that an answer wrong in a
// fraction g of C's elements passes one verifier that opens `openings`
// rows and checks `columns` columns of each (FreivaldsColumns), maximised
// over how the wrong elements are arranged: all in a fraction h of the
// rows, each of those wrong in a fraction g/h of its columns (h = g: whole
// rows wrong; h = 1: the same columns wrong in every row, or scattered).
// Rows are drawn without replacement from many, columns as
// freivaldsDraw does; both are treated as independent draws, which
// overstates the escape slightly. The maximum is over h on a grid of
// 10,000 points in [g, 1].
func ElementCheckMiss(g float64, openings, columns int) float64 {
	if g <= 0 {
		return 1
	}
	g = math.Min(g, 1)
	worst := 0.0
	for i := 0; i <= 10000; i++ {
		h := g + (1-g)*float64(i)/10000
		noRow := math.Pow(1-h, float64(openings))
		miss := noRow + (1-noRow)*math.Pow(1-g/h, float64(columns))
		worst = math.Max(worst, miss)
	}
	return worst
}

// MaxBF16K bounds the inner dimension of a bf16 challenge. BF16Tolerance
// rests on partial sums of the workload's products rarely leaving the
// range where float32 holds them exactly (below 2^8 in magnitude); they
// grow as √k, so past 4096 an honest accumulator that truncates would
// approach the tolerance. Do not raise it without measuring again
// (TestFP32AccumulationPasses, TestFP32AccumulationTail).
const MaxBF16K = 4096

// BF16Lambda is the multiple of the unit roundoff that BF16Tolerance
// allows.
const BF16Lambda = 32

// BF16Tolerance returns the largest relative deviation |c − t| / Σ_p |a_p·b_p|
// an honest bf16 answer may show: λ·u with λ = BF16Lambda and u = 2^-23,
// the unit roundoff of float32 under round-toward-zero (tensor cores
// truncate their fp32 accumulators: Fasi, Higham, Mikaitis and Pranesh,
// "Numerical behavior of NVIDIA tensor cores", PeerJ Comput. Sci. 7:e330,
// 2021). It does not depend on k for k ≤ MaxBF16K, for two reasons and a
// measurement.
//
// The workload's products are exact in float32 and multiples of 2^-16
// (each input a multiple of 2^-8, gpu.BF16Bits), so any float32 sum of
// them is exact while it stays below 2^8 in magnitude: an accumulation
// only rounds once a partial sum leaves that range.
//
// The inputs have independent random signs, so the products have mean
// zero and partial sums grow as √p, not p. For such data the error of a
// dot product relative to Σ|a·b| is a small multiple of u independent of
// k (Higham and Mary, "Sharper probabilistic backward error analysis for
// basic linear algebra kernels with random data", SIAM J. Sci. Comput.
// 42(5), 2020: the bound is proportional to μ√k·u + u for data of mean μ),
// not the λ√k·u of their mean-independent analysis (SIAM J. Sci. Comput.
// 41(5), 2019, Theorem 3.1), which this function returned before and which
// let fp16 accumulation through at k = 4096.
//
// Measured on CPU emulations (TestFP32AccumulationPasses and
// TestFP16AccumulationFails, docs/soundness.md): every honest float32
// accumulation (any order, blocked, split-K, pairwise, FMA, truncation
// after every product or every 4–16 as tensor cores do) stays at or below
// 0.11 of the tolerance up to k = 4096, and is exact up to k = 1024;
// accumulating in fp16, even one rounding per 8 or 16 products before
// adding to a float32 total, deviates 3.5 or more times the tolerance at
// k = 4096 and more at smaller k (its error falls as 1/√k relative to
// Σ|a·b|).
func BF16Tolerance(k int) float64 {
	const u = 1.0 / (1 << 23)
	return BF16Lambda * u
}

func cidEqual(b []byte, c cid.Cid) bool { return string(b) == c.KeyString() }
