package challenge

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// TestCheckDigest: the digest hashes the true row of C = A·B at the
// verifier's CheckRow (recomputed here from the full product), differs per
// verifier and per secret, and is absent for workloads other than int8.
func TestCheckDigest(t *testing.T) {
	ctx := t.Context()
	cpu := gpu.NewCPU()
	ch, _, chCID := newChallenge(t, newPeer(t), newPeer(t), time.Now())
	full, _, err := cpu.MatMulInt8(ctx, Seed(ch), ShapeOf(ch))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	rows := map[int]bool{}
	var verifiers []peer.ID
	for range 8 {
		verifiers = append(verifiers, newPeer(t))
	}
	all, err := CheckDigests(ctx, cpu, ch, chCID, testSecret, verifiers)
	if err != nil || len(all) != len(verifiers) {
		t.Fatalf("%d digests for %d verifiers, %v", len(all), len(verifiers), err)
	}
	for _, v := range verifiers {
		d := all[v]
		if len(d) != CheckDigestSize {
			t.Fatalf("digest %x", d)
		}
		row, _ := CheckRow(ch, testSecret, v)
		rows[row] = true
		h := sha256.New()
		h.Write([]byte("poai/1/check"))
		h.Write(chCID.Bytes())
		h.Write([]byte(v))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(row)))
		h.Write(gpu.EncodeInt32Row(full.Row(row)))
		if !bytes.Equal(d, h.Sum(nil)) {
			t.Fatalf("verifier %s: digest does not hash row %d of the true product", v, row)
		}
		again, _ := CheckDigests(ctx, cpu, ch, chCID, testSecret, []peer.ID{v})
		if !bytes.Equal(d, again[v]) {
			t.Fatal("digest computed alone differs from the batch's")
		}
		// Another secret assigns another row (but for 1 chance in N): the
		// digest must then change.
		other, _ := CheckDigests(ctx, cpu, ch, chCID, []byte("another secret"), []peer.ID{v})
		if otherRow, _ := CheckRow(ch, []byte("another secret"), v); otherRow != row && bytes.Equal(d, other[v]) {
			t.Fatal("digest does not follow the secret's row")
		}
		seen[string(d)] = true
	}
	if len(seen) != 8 || len(rows) < 2 {
		t.Fatalf("8 verifiers got %d digests over %d rows", len(seen), len(rows))
	}
	bf := &pb.Challenge{Workload: pb.Workload_WORKLOAD_GEMM_BF16, N: 96, K: 64, M: 32}
	if d, err := CheckDigests(ctx, cpu, bf, chCID, testSecret, verifiers); d != nil || err != nil {
		t.Fatalf("bf16 challenge: digest %x, %v; want none", d, err)
	}
}
