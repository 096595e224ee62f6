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

// CheckDigest is a verifier's proof that it did the verification's
// arithmetic rather than attest blind: SHA-256("poai/1/check" ‖ challenge
// CID ‖ verifier ‖ row ‖ C_row), where row is CheckRow and C_row its int32
// values (little-endian, as openings encode them), recomputed from the
// seed — work of the same kind and size (k·m multiply-adds) as verifying
// the opened rows, and nothing the prover's opening reveals. Anyone who
// knows the revealed secret can recompute it, so a verifier that attests
// without computing (a lazy verifier, a clique member voting blind) is
// contradicted by every peer that checks the challenge. It returns nil, nil
// for workloads other than int8 GEMM.
//
// Only the int8 workload carries a digest: its rows are exact integers,
// identical on every machine, while bf16 rows depend on accumulation order.
func CheckDigest(ctx context.Context, cpu *gpu.CPU, ch *pb.Challenge, chCID cid.Cid, secret []byte, verifier peer.ID) ([]byte, error) {
	row, ok := CheckRow(ch, secret, verifier)
	if !ok {
		return nil, nil
	}
	shape := ShapeOf(ch)
	if err := shape.ValidateStreamed(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	c, err := cpu.RowsInt8(ctx, Seed(ch), shape, []int{row})
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte("poai/1/check"))
	h.Write(chCID.Bytes())
	h.Write([]byte(verifier))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(row)))
	h.Write(gpu.EncodeInt32Row(c.Row(0)))
	return h.Sum(nil), nil
}
