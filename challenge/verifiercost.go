package challenge

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// VerifierCost is what one verifier of a challenge spends on cpu for an
// honest answer: the Freivalds check of the opened rows (the projection
// B_J·r at the checked columns J, then A_i·(B_J·r) and C_iJ·r per row)
// and the check digests it computes (CheckDigests: its own, to attest, and
// every possible verifier's, to judge theirs, in one pass).
type VerifierCost struct {
	Freivalds, Digest time.Duration
}

// Total is the verifier's whole time.
func (c VerifierCost) Total() time.Duration { return c.Freivalds + c.Digest }

// MeasureVerifierCostInt8 times, on cpu, the work of one verifier of the
// int8 challenge ch, without an answer to check: the same steps as
// Verify's path (freivaldsInt8), on rows of the right width whose values
// do not matter to the time, and CheckDigests for verifiers. The Merkle paths (openings × log₂ N hashes) are left out:
// microseconds. ch must be an int8 challenge whose reveal hash secret
// opens; other workloads return an error.
func MeasureVerifierCostInt8(ctx context.Context, cpu *gpu.CPU, ch *pb.Challenge, chCID cid.Cid, secret []byte, verifiers []peer.ID) (VerifierCost, error) {
	if ch.GetWorkload() != pb.Workload_WORKLOAD_GEMM_INT8 {
		return VerifierCost{}, fmt.Errorf("%w: verifier cost is measured for int8 challenges only, not %v", ErrMalformed, ch.GetWorkload())
	}
	shape, seed := ShapeOf(ch), Seed(ch)
	if err := shape.ValidateStreamed(); err != nil {
		return VerifierCost{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var c VerifierCost
	start := time.Now()
	openings := max(int(ch.GetOpenings()), 1)
	cols, err := SampleColumns(merkle.Hash{}, ch.GetNonce(), secret, shape.M, CheckedColumns(openings, shape.M))
	if err != nil {
		return c, err
	}
	r, rng := freivaldsWeights(len(cols))
	rows, idx := make([][]int32, openings), make([]int, openings)
	for i := range rows {
		rows[i] = make([]int32, shape.M)
		for j := range rows[i] {
			rows[i][j] = int32(rng.Uint32())
		}
		idx[i] = i * shape.N / openings
	}
	if _, err := freivaldsInt8(ctx, cpu, seed, shape, idx, rows, cols, r); err != nil {
		return c, err
	}
	c.Freivalds = time.Since(start)
	start = time.Now()
	if _, err := CheckDigests(ctx, cpu, ch, chCID, secret, verifiers); err != nil {
		return c, err
	}
	c.Digest = time.Since(start)
	return c, nil
}
