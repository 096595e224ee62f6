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

// ShapeOf returns the product shape a GEMM challenge asks for.
func ShapeOf(ch *pb.Challenge) gpu.Shape {
	return gpu.Shape{N: int(ch.GetN()), K: int(ch.GetK()), M: int(ch.GetM())}
}

// Prove runs the challenge's workload on backend and returns the
// commitment and the Fiat-Shamir opening, authored by prover.
func Prove(ctx context.Context, backend gpu.Backend, ch *pb.Challenge, chCID cid.Cid, prover peer.ID) (*pb.Commitment, *pb.Opening, error) {
	seed := Seed(ch)
	switch ch.GetWorkload() {
	case pb.Workload_WORKLOAD_GEMM_INT8:
		c, leaves, err := backend.MatMulInt8(ctx, seed, ShapeOf(ch))
		if err != nil {
			return nil, nil, fmt.Errorf("run workload: %w", err)
		}
		return CommitInt8(ch, chCID, prover, c, leaves)
	case pb.Workload_WORKLOAD_GEMM_BF16:
		c, leaves, err := backend.MatMulBF16(ctx, seed, ShapeOf(ch))
		if err != nil {
			return nil, nil, fmt.Errorf("run workload: %w", err)
		}
		return CommitBF16(ch, chCID, prover, c, leaves)
	case pb.Workload_WORKLOAD_VRAM:
		outputs, leaves, err := backend.VRAM(ctx, seed, VRAMParamsOf(ch))
		if err != nil {
			return nil, nil, fmt.Errorf("run workload: %w", err)
		}
		return Commit(ch, chCID, prover, leaves, func(i int) []byte { return outputs[i][:] })
	}
	return nil, nil, fmt.Errorf("%w: unsupported workload %v", ErrMalformed, ch.GetWorkload())
}

// CommitInt8 commits to an int8-product result c (see Commit).
func CommitInt8(ch *pb.Challenge, chCID cid.Cid, prover peer.ID, c *gpu.Int32Matrix, leaves [][32]byte) (*pb.Commitment, *pb.Opening, error) {
	if c.Rows != len(leaves) {
		return nil, nil, fmt.Errorf("commit: %d rows but %d leaves", c.Rows, len(leaves))
	}
	return Commit(ch, chCID, prover, leaves, func(i int) []byte { return gpu.EncodeInt32Row(c.Row(i)) })
}

// CommitBF16 commits to a bf16-product result c (see Commit).
func CommitBF16(ch *pb.Challenge, chCID cid.Cid, prover peer.ID, c *gpu.Float32Matrix, leaves [][32]byte) (*pb.Commitment, *pb.Opening, error) {
	if c.Rows != len(leaves) {
		return nil, nil, fmt.Errorf("commit: %d rows but %d leaves", c.Rows, len(leaves))
	}
	return Commit(ch, chCID, prover, leaves, func(i int) []byte { return gpu.EncodeFloat32Row(c.Row(i)) })
}

// Commit builds the Merkle tree over leaves and returns the commitment to
// its root and the opening of the leaves that SampleRows picks from that
// root and the challenge nonce; value(i) returns the encoded leaf i. Commit
// does not check that the values are right — that is what verifiers do.
func Commit(ch *pb.Challenge, chCID cid.Cid, prover peer.ID, leaves [][32]byte, value func(i int) []byte) (*pb.Commitment, *pb.Opening, error) {
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
		ro := &pb.RowOpening{Index: uint32(i), Values: value(i)}
		for _, h := range proof {
			ro.Proof = append(ro.Proof, h[:])
		}
		op.Rows = append(op.Rows, ro)
	}
	return com, op, nil
}
