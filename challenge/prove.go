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

// Committed is a prover's state between its commitment and its opening:
// the Merkle tree over its leaves and the values to open.
type Committed struct {
	Commitment    *pb.Commitment
	CommitmentCID cid.Cid
	chCID         cid.Cid
	prover        peer.ID
	tree          *merkle.Tree
	values        func(idx []int) ([][]byte, error)
}

// Run runs the challenge's workload on backend and commits to the result,
// naming the challenge's epoch. Publish Committed.Commitment at once; open
// when the challenger's secret is revealed. A backend that implements
// gpu.Streamer computes a product's leaves without holding C, and the
// opened rows are recomputed at Open.
func Run(ctx context.Context, backend gpu.Backend, ch *pb.Challenge, chCID cid.Cid, prover peer.ID) (*Committed, error) {
	c, err := run(ctx, backend, ch, chCID, prover)
	if err != nil {
		return nil, err
	}
	if err := c.SetEpoch(ch.GetEpoch()); err != nil {
		return nil, err
	}
	return c, nil
}

func run(ctx context.Context, backend gpu.Backend, ch *pb.Challenge, chCID cid.Cid, prover peer.ID) (*Committed, error) {
	seed := Seed(ch)
	st, streams := backend.(gpu.Streamer)
	shape := ShapeOf(ch)
	switch w := ch.GetWorkload(); {
	case streams && w == pb.Workload_WORKLOAD_GEMM_INT8:
		leaves, err := st.LeavesInt8(ctx, seed, shape)
		if err != nil {
			return nil, fmt.Errorf("run workload: %w", err)
		}
		return CommitRows(chCID, prover, leaves, func(idx []int) ([][]byte, error) {
			rows, err := st.RowsInt8(context.Background(), seed, shape, idx)
			if err != nil {
				return nil, err
			}
			out := make([][]byte, len(idx))
			for i := range idx {
				out[i] = gpu.EncodeInt32Row(rows.Row(i))
			}
			return out, nil
		})
	case streams && w == pb.Workload_WORKLOAD_GEMM_BF16:
		leaves, err := st.LeavesBF16(ctx, seed, shape)
		if err != nil {
			return nil, fmt.Errorf("run workload: %w", err)
		}
		return CommitRows(chCID, prover, leaves, func(idx []int) ([][]byte, error) {
			rows, err := st.RowsBF16(context.Background(), seed, shape, idx)
			if err != nil {
				return nil, err
			}
			out := make([][]byte, len(idx))
			for i := range idx {
				out[i] = gpu.EncodeFloat32Row(rows.Row(i))
			}
			return out, nil
		})
	case w == pb.Workload_WORKLOAD_GEMM_INT8:
		c, leaves, err := backend.MatMulInt8(ctx, seed, ShapeOf(ch))
		if err != nil {
			return nil, fmt.Errorf("run workload: %w", err)
		}
		return CommitInt8(ch, chCID, prover, c, leaves)
	case w == pb.Workload_WORKLOAD_GEMM_BF16:
		c, leaves, err := backend.MatMulBF16(ctx, seed, ShapeOf(ch))
		if err != nil {
			return nil, fmt.Errorf("run workload: %w", err)
		}
		return CommitBF16(ch, chCID, prover, c, leaves)
	case w == pb.Workload_WORKLOAD_VRAM:
		outputs, leaves, err := backend.VRAM(ctx, seed, VRAMParamsOf(ch))
		if err != nil {
			return nil, fmt.Errorf("run workload: %w", err)
		}
		return Commit(chCID, prover, leaves, func(i int) []byte { return outputs[i][:] })
	}
	return nil, fmt.Errorf("%w: unsupported workload %v", ErrMalformed, ch.GetWorkload())
}

// Prove runs the workload, commits and opens with secret at once: what a
// prover does when it already holds the revealed secret (tests, benches).
func Prove(ctx context.Context, backend gpu.Backend, ch *pb.Challenge, chCID cid.Cid, prover peer.ID, secret []byte) (*pb.Commitment, *pb.Opening, error) {
	c, err := Run(ctx, backend, ch, chCID, prover)
	if err != nil {
		return nil, nil, err
	}
	op, err := c.Open(ch, secret)
	return c.Commitment, op, err
}

// CommitInt8 commits to an int8-product result c (see Commit).
func CommitInt8(ch *pb.Challenge, chCID cid.Cid, prover peer.ID, c *gpu.Int32Matrix, leaves [][32]byte) (*Committed, error) {
	if c.Rows != len(leaves) {
		return nil, fmt.Errorf("commit: %d rows but %d leaves", c.Rows, len(leaves))
	}
	return Commit(chCID, prover, leaves, func(i int) []byte { return gpu.EncodeInt32Row(c.Row(i)) })
}

// CommitBF16 commits to a bf16-product result c (see Commit).
func CommitBF16(ch *pb.Challenge, chCID cid.Cid, prover peer.ID, c *gpu.Float32Matrix, leaves [][32]byte) (*Committed, error) {
	if c.Rows != len(leaves) {
		return nil, fmt.Errorf("commit: %d rows but %d leaves", c.Rows, len(leaves))
	}
	return Commit(chCID, prover, leaves, func(i int) []byte { return gpu.EncodeFloat32Row(c.Row(i)) })
}

// Commit builds the Merkle tree over leaves and the commitment to its
// root; value(i) returns the encoded leaf i for the opening. Commit does
// not check that the values are right — that is what verifiers do.
func Commit(chCID cid.Cid, prover peer.ID, leaves [][32]byte, value func(i int) []byte) (*Committed, error) {
	return CommitRows(chCID, prover, leaves, func(idx []int) ([][]byte, error) {
		out := make([][]byte, len(idx))
		for i, j := range idx {
			out[i] = value(j)
		}
		return out, nil
	})
}

// CommitRows is Commit with the opened values produced together, so a
// streaming prover can recompute them in one batch.
func CommitRows(chCID cid.Cid, prover peer.ID, leaves [][32]byte, values func(idx []int) ([][]byte, error)) (*Committed, error) {
	tree, err := merkle.New(leaves)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
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
		return nil, err
	}
	return &Committed{Commitment: com, CommitmentCID: comCID, chCID: chCID, prover: prover, tree: tree, values: values}, nil
}

// SetEpoch names epoch e (the challenge's) in the commitment and
// re-derives its CID. Run sets it; a commitment built with Commit needs
// it before Sign, or receivers ignore it as out of their epoch window.
func (c *Committed) SetEpoch(e uint64) error {
	c.Commitment.Epoch = e
	_, comCID, err := MessageCID(c.Commitment)
	if err != nil {
		return err
	}
	c.CommitmentCID = comCID
	return nil
}

// Stamp records the prover's device state at commit time (NVML's SM clock,
// its maximum, in MHz, and the temperature in °C) in the commitment and
// re-derives the commitment's CID. Call it before publishing.
func (c *Committed) Stamp(smClockMHz, smClockMaxMHz, temperatureC uint32) error {
	c.Commitment.SmClockMhz, c.Commitment.SmClockMaxMhz, c.Commitment.TemperatureC = smClockMHz, smClockMaxMHz, temperatureC
	_, comCID, err := MessageCID(c.Commitment)
	if err != nil {
		return err
	}
	c.CommitmentCID = comCID
	return nil
}

// Open returns the opening of the leaves SampleRows draws from the root,
// the challenge nonce and SamplingSecret(secret, shares): the
// challenger's revealed secret and the revealed shares of the verifiers
// the commitment lists, in its order. It names the challenge's epoch.
func (c *Committed) Open(ch *pb.Challenge, secret []byte, shares ...[]byte) (*pb.Opening, error) {
	idx, err := SampleRows(c.tree.Root(), ch.GetNonce(), SamplingSecret(secret, shares), c.tree.Size(), min(int(ch.GetOpenings()), c.tree.Size()))
	if err != nil {
		return nil, err
	}
	op := &pb.Opening{ChallengeCid: c.chCID.Bytes(), CommitmentCid: c.CommitmentCID.Bytes(), Prover: []byte(c.prover), Epoch: ch.GetEpoch()}
	values, err := c.values(idx)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	for n, i := range idx {
		proof, err := c.tree.Proof(i)
		if err != nil {
			return nil, err
		}
		ro := &pb.RowOpening{Index: uint32(i), Values: values[n]}
		for _, h := range proof {
			ro.Proof = append(ro.Proof, h[:])
		}
		op.Rows = append(op.Rows, ro)
	}
	return op, nil
}
