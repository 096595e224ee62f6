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
// the Merkle tree over its leaves without its lowest levels
// (merkle.Pruned), and the values to open. Open recomputes the leaves
// under each opened leaf's lowest kept ancestor from their values.
type Committed struct {
	Commitment    *pb.Commitment
	CommitmentCID cid.Cid
	chCID         cid.Cid
	prover        peer.ID
	tree          *merkle.Pruned
	values        func(ctx context.Context, idx []int) ([][]byte, error)
	// llm is an llm answer's leaves and tree (CommitLLM); tree and values
	// are nil then.
	llm *LLMAnswer
}

// Heights below which a committed tree is not kept (merkle.Pruned). A
// streaming prover recomputes each opened row's sibling row too: one
// hash per row kept, twice the openings' rows recomputed (132 of the
// default 66, a few K·M multiply-adds each, against N·K·M for the
// product). Where the values are held (a VRAM prover's lane outputs, a
// product's C) a proof costs only the 16 leaf hashes under its
// height-4 ancestor, and the tree an eighth of a hash per leaf.
const (
	StreamedSkip = 1
	HeldSkip     = 4
)

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
		return CommitRows(chCID, prover, leaves, StreamedSkip, func(ctx context.Context, idx []int) ([][]byte, error) {
			rows, err := st.RowsInt8(ctx, seed, shape, idx)
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
		return CommitRows(chCID, prover, leaves, StreamedSkip, func(ctx context.Context, idx []int) ([][]byte, error) {
			rows, err := st.RowsBF16(ctx, seed, shape, idx)
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
	case w == pb.Workload_WORKLOAD_LLM:
		return runLLM(ctx, backend, ch, chCID, prover)
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
	op, err := c.Open(ctx, ch, secret)
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
// root; value(i) returns the encoded leaf i for the opening, whose leaf
// hash is leaves[i]. Commit does not check that the values are right —
// that is what verifiers do. It keeps the tree from height HeldSkip up,
// and not leaves.
func Commit(chCID cid.Cid, prover peer.ID, leaves [][32]byte, value func(i int) []byte) (*Committed, error) {
	return CommitRows(chCID, prover, leaves, HeldSkip, func(_ context.Context, idx []int) ([][]byte, error) {
		out := make([][]byte, len(idx))
		for i, j := range idx {
			out[i] = value(j)
		}
		return out, nil
	})
}

// CommitRows is Commit with the opened values produced together, so a
// streaming prover can recompute them in one batch, and the tree kept
// from height skip up: Open asks values for the 2^skip leaves under each
// opened leaf's ancestor at that height (merkle.Pruned.Span), with
// Open's context.
func CommitRows(chCID cid.Cid, prover peer.ID, leaves [][32]byte, skip int, values func(ctx context.Context, idx []int) ([][]byte, error)) (*Committed, error) {
	tree, err := merkle.NewPruned(leaves, skip)
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
// the commitment lists, in its order. It names the challenge's epoch. A
// streamed product's rows are recomputed under ctx, whose cancellation
// abandons the opening.
func (c *Committed) Open(ctx context.Context, ch *pb.Challenge, secret []byte, shares ...[]byte) (*pb.Opening, error) {
	if c.llm != nil {
		return c.openLLM(ch, secret, shares)
	}
	idx, err := SampleRows(c.tree.Root(), ch.GetNonce(), SamplingSecret(secret, shares), c.tree.Size(), min(int(ch.GetOpenings()), c.tree.Size()))
	if err != nil {
		return nil, err
	}
	op := &pb.Opening{ChallengeCid: c.chCID.Bytes(), CommitmentCid: c.CommitmentCID.Bytes(), Prover: []byte(c.prover), Epoch: ch.GetEpoch()}
	// The values of every leaf under the opened leaves' kept ancestors,
	// asked for in one batch.
	var need []int
	at := map[int]int{} // leaf → its index in need
	for _, i := range idx {
		lo, hi := c.tree.Span(i)
		for j := lo; j < hi; j++ {
			if _, ok := at[j]; !ok {
				at[j] = len(need)
				need = append(need, j)
			}
		}
	}
	values, err := c.values(ctx, need)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if len(values) != len(need) {
		return nil, fmt.Errorf("open: %d values for %d leaves", len(values), len(need))
	}
	for _, i := range idx {
		lo, hi := c.tree.Span(i)
		span := make([]merkle.Hash, 0, hi-lo)
		for j := lo; j < hi; j++ {
			span = append(span, merkle.LeafHash(values[at[j]]))
		}
		proof, err := c.tree.Proof(i, span)
		if err != nil {
			return nil, fmt.Errorf("open: %w", err)
		}
		ro := &pb.RowOpening{Index: uint32(i), Values: values[at[i]]}
		for _, h := range proof {
			ro.Proof = append(ro.Proof, h[:])
		}
		op.Rows = append(op.Rows, ro)
	}
	return op, nil
}
