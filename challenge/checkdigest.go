package challenge

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// CheckDigestSize is the length of an attestation's check digest.
const CheckDigestSize = sha256.Size

// CheckLeaf is the leaf that verifier must recompute, besides the opened
// ones, to attest a correctness verdict: a row of C = A·B on a GEMM
// challenge, a lane on a VRAM challenge, on an llm challenge the position
// of a layer-0 stage among the first LLMCheckPositions of the prompt;
// SHA-256("poai/1/check-row" ‖ secret ‖ verifier) mod the number of
// leaves. The challenger's secret is revealed only after the target
// committed, so neither the target nor the verifier knows the leaf in
// advance, and each verifier's leaf differs. ok is false for a challenge
// with no leaves.
func CheckLeaf(ch *pb.Challenge, secret []byte, verifier peer.ID) (leaf int, ok bool) {
	leaves := uint64(ch.GetN())
	switch ch.GetWorkload() {
	case pb.Workload_WORKLOAD_VRAM:
		leaves = uint64(ch.GetVramLanes())
	case pb.Workload_WORKLOAD_LLM:
		leaves = uint64(min(ch.GetLlm().GetPrompt(), LLMCheckPositions))
	}
	if leaves == 0 {
		return 0, false
	}
	h := sha256.New()
	h.Write([]byte("poai/1/check-row"))
	h.Write(secret)
	h.Write([]byte(verifier))
	return int(binary.BigEndian.Uint64(h.Sum(nil)) % leaves), true
}

// CheckColumns is how many elements of its check leaf's row a verifier
// hashes into its check digest on a GEMM challenge: the whole row when m ≤
// CheckColumns, else CheckColumns scattered columns that the revealed
// secret chooses (CheckColumnsOf), the same for every verifier of the
// challenge, whose leaves differ. Scattered, each column costs its own
// Philox block per row of B: a verifier's digest costs about half what the
// verification's B_J·r does (CheckedColumns columns, at least 64), so a
// verifier that computes it and attests blind still pays a third of an
// honest verification; the digests of all of a challenge's verifiers share
// one pass over those columns.
const CheckColumns = 32

// CheckColumnsOf returns the columns of the check leaves' rows that the
// check digests of challenge ch cover, in order: all m when m ≤
// CheckColumns; else CheckColumns distinct columns, SampleRows' stream
// under the tag "poai/1/check-cols" with a zero root, the challenge's
// nonce and the revealed secret as the randomness.
func CheckColumnsOf(ch *pb.Challenge, secret []byte) []int {
	m := int(ch.GetM())
	if m <= 0 {
		return nil
	}
	if m <= CheckColumns {
		cols := make([]int, m)
		for i := range cols {
			cols[i] = i
		}
		return cols
	}
	cols, _ := sample(checkColumnsTag, merkle.Hash{}, ch.GetNonce(), secret, m, CheckColumns)
	return cols
}

// LLMCheckPositions is how many prompt positions an llm check leaf is
// drawn from: recomputing layer 0 at position j from the seed runs layer 0
// at positions 0 … j, at most LLMCheckPositions·(4D² + 2DF) multiply-adds,
// about as much as verifying the challenge (0.8 M against 0.85 M at the
// devnet shape), so a verifier attesting blind still pays most of it.
const LLMCheckPositions = 4

// CheckDigests returns the check digest of each of verifiers. A check
// digest is a verifier's proof that it did arithmetic of the
// verification's kind rather than attest blind: SHA-256("poai/1/check" ‖
// challenge CID ‖ verifier ‖ leaf ‖ value), where leaf is CheckLeaf and
// value is recomputed from the seed: on a GEMM challenge the elements of
// C's row `leaf` at CheckColumnsOf (k·CheckColumns multiply-adds), on a
// VRAM challenge the lane (Reads·(Rounds+1) SHA-256 blocks), on an llm
// challenge the layer-0 stage at that prompt position (EncodeStage, the
// model's first layer run on the prompt's first positions); nothing the
// prover's opening reveals. Anyone who knows the revealed secret can
// recompute it, so a verifier that attests without computing (a lazy
// verifier, a clique member voting blind) is contradicted by every peer
// that checks the challenge.
//
// The value must be identical on every machine, so an element is the
// exact one, not the rounded one a device commits to: for int8, the int32
// values (little-endian, as openings encode them); for bf16, each exact
// sum Σ_p a_ip·b_pj times 2^16 as an int64 (little-endian; see
// gpu.CPU.ElementsBF16Exact). A lane's value is its 32-byte output (gpu.VRAMLane).
func CheckDigests(ctx context.Context, cpu *gpu.CPU, ch *pb.Challenge, chCID cid.Cid, secret []byte, verifiers []peer.ID) (map[peer.ID][]byte, error) {
	if _, ok := CheckLeaf(ch, secret, ""); !ok || len(verifiers) == 0 {
		return nil, nil
	}
	leaves := make([]int, len(verifiers))
	for i, v := range verifiers {
		leaves[i], _ = CheckLeaf(ch, secret, v)
	}
	encoded, err := checkValues(ctx, cpu, ch, leaves, CheckColumnsOf(ch, secret))
	if err != nil {
		return nil, err
	}
	out := make(map[peer.ID][]byte, len(verifiers))
	for i, v := range verifiers {
		h := sha256.New()
		h.Write([]byte("poai/1/check"))
		h.Write(chCID.Bytes())
		h.Write([]byte(v))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(leaves[i])))
		h.Write(encoded[i])
		out[v] = h.Sum(nil)
	}
	return out, nil
}

// checkValues recomputes the given leaves of ch (on a GEMM challenge, at
// columns cols, in one pass over them) and encodes each as CheckDigests
// hashes it.
func checkValues(ctx context.Context, cpu *gpu.CPU, ch *pb.Challenge, leaves []int, cols []int) ([][]byte, error) {
	encoded := make([][]byte, len(leaves))
	seed := Seed(ch)
	switch ch.GetWorkload() {
	case pb.Workload_WORKLOAD_VRAM:
		p := VRAMParamsOf(ch)
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		for i, lane := range leaves {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			out := gpu.VRAMLane(seed, lane, p, func(g uint64) [32]byte { return gpu.VRAMBlock(seed, g, p.Rounds) })
			encoded[i] = out[:]
		}
		return encoded, nil
	case pb.Workload_WORKLOAD_LLM:
		return llmCheckValues(ctx, ch, leaves)
	case pb.Workload_WORKLOAD_GEMM_INT8, pb.Workload_WORKLOAD_GEMM_BF16:
	default:
		return nil, fmt.Errorf("%w: no check digest for workload %v", ErrMalformed, ch.GetWorkload())
	}
	shape := ShapeOf(ch)
	if err := shape.ValidateStreamed(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if ch.GetWorkload() == pb.Workload_WORKLOAD_GEMM_INT8 {
		c, err := cpu.ElementsInt8(ctx, seed, shape, leaves, cols)
		if err != nil {
			return nil, err
		}
		for i := range leaves {
			encoded[i] = gpu.EncodeInt32Row(c.Row(i))
		}
		return encoded, nil
	}
	if shape.K > MaxBF16K {
		return nil, fmt.Errorf("%w: bf16 inner dimension %d above %d", ErrMalformed, shape.K, MaxBF16K)
	}
	exact, _, err := cpu.ElementsBF16Exact(ctx, seed, shape, leaves, cols)
	if err != nil {
		return nil, err
	}
	for i := range leaves {
		b := make([]byte, 0, 8*len(cols))
		for _, v := range exact[i*len(cols) : (i+1)*len(cols)] {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
		encoded[i] = b
	}
	return encoded, nil
}
