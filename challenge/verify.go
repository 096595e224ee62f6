package challenge

import (
	"context"
	"errors"
	"fmt"
	"math"

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
	// a valid proof and equal the recomputed row, in [0,1].
	Accuracy float64
	// Deviation is the largest |claimed − true| / max(1, max|true row|)
	// over the opened elements: 0 for an exact answer, and 1 for a row that
	// could not be checked (missing or with a bad proof).
	Deviation float64
	// Reason explains a verdict other than PASS.
	Reason string
}

// Verify checks an opening against its commitment and challenge: the
// opened rows must be exactly those SampleRows derives from the committed
// root and the nonce, each with a valid Merkle proof; then every opened row
// is recomputed from the seed with cpu (O(k·m) each) and compared element
// by element. A single wrong element makes the verdict WRONG_ANSWER.
func Verify(ctx context.Context, cpu *gpu.CPU, ch *pb.Challenge, chCID cid.Cid, com *pb.Commitment, comCID cid.Cid, op *pb.Opening) (Result, error) {
	bad := func(format string, a ...any) (Result, error) {
		return Result{Verdict: pb.Verdict_VERDICT_BAD_PROOF, Deviation: 1, Reason: fmt.Sprintf(format, a...)}, nil
	}
	shape := ShapeOf(ch)
	switch {
	case !cidEqual(com.GetChallengeCid(), chCID):
		return bad("commitment names another challenge")
	case !cidEqual(op.GetChallengeCid(), chCID):
		return bad("opening names another challenge")
	case !cidEqual(op.GetCommitmentCid(), comCID):
		return bad("opening names another commitment")
	case int(com.GetLeaves()) != shape.N:
		return bad("commitment has %d leaves, challenge has %d rows", com.GetLeaves(), shape.N)
	case len(com.GetMerkleRoot()) != 32:
		return bad("merkle root has %d bytes", len(com.GetMerkleRoot()))
	}
	var root merkle.Hash
	copy(root[:], com.GetMerkleRoot())
	want, err := SampleRows(root, ch.GetNonce(), shape.N, min(int(ch.GetOpenings()), shape.N))
	if err != nil {
		return bad("%v", err)
	}
	if len(op.GetRows()) != len(want) {
		return bad("opened %d rows, %d requested", len(op.GetRows()), len(want))
	}
	// Check structure and proofs first; recompute only rows that verified.
	rows := make([][]int32, len(want))
	var proofErr error
	for r, ro := range op.GetRows() {
		if int(ro.GetIndex()) != want[r] {
			return bad("row %d opened at index %d, Fiat-Shamir says %d", r, ro.GetIndex(), want[r])
		}
		vals, err := gpu.DecodeInt32Row(ro.GetValues())
		if err != nil || len(vals) != shape.M {
			proofErr = errors.Join(proofErr, fmt.Errorf("row %d: width %d, want %d", want[r], len(vals), shape.M))
			continue
		}
		proof := make([]merkle.Hash, len(ro.GetProof()))
		for k, p := range ro.GetProof() {
			if len(p) != 32 {
				return bad("row %d: proof hash of %d bytes", want[r], len(p))
			}
			copy(proof[k][:], p)
		}
		if err := merkle.Verify(root, shape.N, want[r], gpu.LeafHash(vals), proof); err != nil {
			proofErr = errors.Join(proofErr, fmt.Errorf("row %d: %w", want[r], err))
			continue
		}
		rows[r] = vals
	}
	truth, err := cpu.RowsInt8(ctx, Seed(ch), shape, want)
	if err != nil {
		return Result{}, fmt.Errorf("recompute rows: %w", err)
	}
	res := Result{Verdict: pb.Verdict_VERDICT_PASS}
	correct := 0
	for r, vals := range rows {
		if vals == nil {
			res.Deviation = math.Max(res.Deviation, 1)
			continue
		}
		t := truth.Row(r)
		scale := 1.0
		for _, v := range t {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		ok := true
		for j, v := range vals {
			if v != t[j] {
				ok = false
				res.Deviation = math.Max(res.Deviation, math.Abs(float64(v)-float64(t[j]))/scale)
			}
		}
		if ok {
			correct++
		}
	}
	res.Accuracy = float64(correct) / float64(len(want))
	switch {
	case proofErr != nil:
		res.Verdict = pb.Verdict_VERDICT_BAD_PROOF
		res.Reason = proofErr.Error()
	case correct < len(want):
		res.Verdict = pb.Verdict_VERDICT_WRONG_ANSWER
		res.Reason = fmt.Sprintf("%d of %d opened rows wrong", len(want)-correct, len(want))
	}
	return res, nil
}

func cidEqual(b []byte, c cid.Cid) bool { return string(b) == c.KeyString() }
