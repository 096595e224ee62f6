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

// CheckRow is the row of C = A·B that verifier must recompute, besides the
// opened ones, to attest a correctness verdict on an int8 GEMM challenge:
// SHA-256("poai/1/check-row" ‖ secret ‖ verifier) mod N. The challenger's
// secret is revealed only after the target committed, so neither the
// target nor the verifier knows the row in advance, and each verifier's
// row differs. ok is false for other workloads, which carry no digest.
func CheckRow(ch *pb.Challenge, secret []byte, verifier peer.ID) (row int, ok bool) {
	if ch.GetWorkload() != pb.Workload_WORKLOAD_GEMM_INT8 || ch.GetN() == 0 {
		return 0, false
	}
	h := sha256.New()
	h.Write([]byte("poai/1/check-row"))
	h.Write(secret)
	h.Write([]byte(verifier))
	return int(binary.BigEndian.Uint64(h.Sum(nil)) % uint64(ch.GetN())), true
}

// CheckDigests returns the check digest of each of verifiers, computing
// their rows in one pass over B. A check digest is a verifier's proof that
// it did the verification's arithmetic rather than attest blind:
// SHA-256("poai/1/check" ‖ challenge CID ‖ verifier ‖ row ‖ C_row), where
// row is CheckRow and C_row its int32 values (little-endian, as openings
// encode them), recomputed from the seed — work of the same kind and size
// (k·m multiply-adds) as verifying an opened row, and nothing the prover's
// opening reveals. Anyone who knows the revealed secret can recompute it,
// so a verifier that attests without computing (a lazy verifier, a clique
// member voting blind) is contradicted by every peer that checks the
// challenge.
//
// It returns nil, and no error, for workloads other than int8 GEMM: only
// int8 rows are exact integers, identical on every machine; bf16 rows
// depend on accumulation order.
func CheckDigests(ctx context.Context, cpu *gpu.CPU, ch *pb.Challenge, chCID cid.Cid, secret []byte, verifiers []peer.ID) (map[peer.ID][]byte, error) {
	if _, ok := CheckRow(ch, secret, ""); !ok || len(verifiers) == 0 {
		return nil, nil
	}
	shape := ShapeOf(ch)
	if err := shape.ValidateStreamed(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	rows := make([]int, len(verifiers))
	for i, v := range verifiers {
		rows[i], _ = CheckRow(ch, secret, v)
	}
	c, err := cpu.RowsInt8(ctx, Seed(ch), shape, rows)
	if err != nil {
		return nil, err
	}
	out := make(map[peer.ID][]byte, len(verifiers))
	for i, v := range verifiers {
		h := sha256.New()
		h.Write([]byte("poai/1/check"))
		h.Write(chCID.Bytes())
		h.Write([]byte(v))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(rows[i])))
		h.Write(gpu.EncodeInt32Row(c.Row(i)))
		out[v] = h.Sum(nil)
	}
	return out, nil
}
