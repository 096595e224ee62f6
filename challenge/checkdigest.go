package challenge

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// CheckDigestSize is the length of an attestation's check digest.
const CheckDigestSize = sha256.Size

// CheckLeaf is the leaf that verifier must recompute, besides the opened
// ones, to attest a correctness verdict: a row of C = A·B on a GEMM
// challenge, a lane on a VRAM challenge; SHA-256("poai/1/check-row" ‖
// secret ‖ verifier) mod the number of leaves. The challenger's secret is
// revealed only after the target committed, so neither the target nor the
// verifier knows the leaf in advance, and each verifier's leaf differs. ok
// is false for a challenge with no leaves.
func CheckLeaf(ch *pb.Challenge, secret []byte, verifier peer.ID) (leaf int, ok bool) {
	leaves := uint64(ch.GetN())
	if ch.GetWorkload() == pb.Workload_WORKLOAD_VRAM {
		leaves = uint64(ch.GetVramLanes())
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

// CheckDigests returns the check digest of each of verifiers, computing
// their rows in one pass over B. A check digest is a verifier's proof that
// it did the verification's arithmetic rather than attest blind:
// SHA-256("poai/1/check" ‖ challenge CID ‖ verifier ‖ leaf ‖ value), where
// leaf is CheckLeaf and value the leaf recomputed from the seed — work of
// the same kind and size as verifying an opened leaf (k·m multiply-adds
// for a row, Reads·(Rounds+1) SHA-256 blocks for a lane), and nothing the
// prover's opening reveals. Anyone who knows
// the revealed secret can recompute it, so a verifier that attests without
// computing (a lazy verifier, a clique member voting blind) is
// contradicted by every peer that checks the challenge.
//
// The value must be identical on every machine, so a row is the exact
// one, not the rounded one a device commits to: for int8, the int32
// values (little-endian, as openings encode them); for bf16, each exact
// sum Σ_p a_ip·b_pj times 2^16 as an int64 (little-endian; see
// ExactBF16Rows). A lane's value is its 32-byte output (gpu.VRAMLane).
func CheckDigests(ctx context.Context, cpu *gpu.CPU, ch *pb.Challenge, chCID cid.Cid, secret []byte, verifiers []peer.ID) (map[peer.ID][]byte, error) {
	if _, ok := CheckLeaf(ch, secret, ""); !ok || len(verifiers) == 0 {
		return nil, nil
	}
	leaves := make([]int, len(verifiers))
	for i, v := range verifiers {
		leaves[i], _ = CheckLeaf(ch, secret, v)
	}
	encoded, err := checkValues(ctx, cpu, ch, leaves)
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

// checkValues recomputes the given leaves of ch and encodes each as
// CheckDigests hashes it.
func checkValues(ctx context.Context, cpu *gpu.CPU, ch *pb.Challenge, leaves []int) ([][]byte, error) {
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
	case pb.Workload_WORKLOAD_GEMM_INT8, pb.Workload_WORKLOAD_GEMM_BF16:
	default:
		return nil, fmt.Errorf("%w: no check digest for workload %v", ErrMalformed, ch.GetWorkload())
	}
	shape := ShapeOf(ch)
	if err := shape.ValidateStreamed(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if ch.GetWorkload() == pb.Workload_WORKLOAD_GEMM_INT8 {
		c, err := cpu.RowsInt8(ctx, seed, shape, leaves)
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
	c, err := ExactBF16Rows(ctx, cpu, seed, shape, leaves)
	if err != nil {
		return nil, err
	}
	for i := range leaves {
		row := c[i*shape.M : (i+1)*shape.M]
		b := make([]byte, 0, 8*len(row))
		for _, v := range row {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
		encoded[i] = b
	}
	return encoded, nil
}

// ExactBF16Rows returns the given rows of the bf16 workload's C = A·B
// computed exactly, each element scaled by 2^16: shape len(rows)×M,
// row-major. Every bf16 input is a multiple of 2^-8 with |x| < 2
// (gpu.BF16Bits), so every product a·b is a multiple of 2^-16 below 4 in
// magnitude and every partial sum a multiple of 2^-16 below 4k: float64
// (53-bit significand) adds them without rounding for any k < 2^35, and the
// result, times 2^16, is an integer. Unlike a device's fp32 answer it does
// not depend on the order of accumulation, so every machine gets the same
// bits. Cost: k·m multiply-adds per row, plus building Bᵀ.
func ExactBF16Rows(ctx context.Context, cpu *gpu.CPU, seed gpu.Seed, shape gpu.Shape, rows []int) ([]int64, error) {
	for _, r := range rows {
		if r < 0 || r >= shape.N {
			return nil, fmt.Errorf("row %d outside [0, %d)", r, shape.N)
		}
	}
	bt, err := cpu.TransposedBF16B(ctx, seed, shape)
	if err != nil {
		return nil, err
	}
	k := shape.K
	a := make([]float32, k)
	out := make([]int64, len(rows)*shape.M)
	for i, r := range rows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		gpu.FillBF16Row(a, seed, gpu.MatrixBF16A, r)
		dst := out[i*shape.M : (i+1)*shape.M]
		for j := range dst {
			b := bt[j*k : (j+1)*k]
			var acc float64
			for p, x := range a {
				acc += float64(x) * float64(b[p])
			}
			dst[j] = int64(acc * (1 << 16))
		}
	}
	return out, nil
}
