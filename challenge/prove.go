package challenge

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// ShapeOf returns the product shape a challenge asks for.
func ShapeOf(ch *pb.Challenge) gpu.Shape {
	return gpu.Shape{N: int(ch.GetN()), K: int(ch.GetK()), M: int(ch.GetM())}
}

// Prove runs the challenge's workload on backend and returns the
// commitment and the Fiat-Shamir opening, authored by prover.
func Prove(ctx context.Context, backend gpu.Backend, ch *pb.Challenge, chCID cid.Cid, prover peer.ID) (*pb.Commitment, *pb.Opening, error) {
	if ch.GetWorkload() != pb.Workload_WORKLOAD_GEMM_INT8 {
		return nil, nil, fmt.Errorf("%w: unsupported workload %v", ErrMalformed, ch.GetWorkload())
	}
	c, leaves, err := backend.MatMulInt8(ctx, Seed(ch), ShapeOf(ch))
	if err != nil {
		return nil, nil, fmt.Errorf("run workload: %w", err)
	}
	return Commit(ch, chCID, prover, c, leaves)
}

// Commit builds the Merkle tree over leaves (one per row of c), and returns
// the commitment to its root and the opening of the rows that SampleRows
// picks from that root and the challenge nonce. c must have as many rows as
// leaves; Commit does not check that c is the right product — that is what
// verifiers do.
func Commit(ch *pb.Challenge, chCID cid.Cid, prover peer.ID, c *gpu.Int32Matrix, leaves [][32]byte) (*pb.Commitment, *pb.Opening, error) {
	if c.Rows != len(leaves) {
		return nil, nil, fmt.Errorf("commit: %d rows but %d leaves", c.Rows, len(leaves))
	}
	tree, err := merkle.New(leaves)
	if err != nil {
		return nil, nil, fmt.Errorf("commit: %w", err)
	}
	root := tree.Root()
	com := &pb.Commitment{
		ChallengeCid: chCID.Bytes(),
		Prover:       []byte(prover),
		MerkleRoot:   root[:],
		Leaves:       uint32(len(leaves)),
	}
	_, comCID, err := MessageCID(com)
	if err != nil {
		return nil, nil, err
	}
	idx, err := SampleRows(root, ch.GetNonce(), len(leaves), min(int(ch.GetOpenings()), len(leaves)))
	if err != nil {
		return nil, nil, err
	}
	op := &pb.Opening{ChallengeCid: chCID.Bytes(), CommitmentCid: comCID.Bytes(), Prover: []byte(prover)}
	for _, i := range idx {
		proof, err := tree.Proof(i)
		if err != nil {
			return nil, nil, err
		}
		ro := &pb.RowOpening{Index: uint32(i), Values: gpu.EncodeInt32Row(c.Row(i))}
		for _, h := range proof {
			ro.Proof = append(ro.Proof, h[:])
		}
		op.Rows = append(op.Rows, ro)
	}
	return com, op, nil
}
