package challenge

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// wantDigest is the check digest as CheckDigests documents it, computed
// here from a leaf value the test derived independently.
func wantDigest(chCID cid.Cid, verifier peer.ID, leaf int, value []byte) []byte {
	h := sha256.New()
	h.Write([]byte("poai/1/check"))
	h.Write(chCID.Bytes())
	h.Write([]byte(verifier))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(leaf)))
	h.Write(value)
	return h.Sum(nil)
}

// TestCheckDigest: the digest hashes the true row of C = A·B at the
// verifier's CheckLeaf (recomputed here from the full product), differs per
// verifier and per secret.
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
		row, _ := CheckLeaf(ch, testSecret, v)
		rows[row] = true
		if !bytes.Equal(d, wantDigest(chCID, v, row, gpu.EncodeInt32Row(full.Row(row)))) {
			t.Fatalf("verifier %s: digest does not hash row %d of the true product", v, row)
		}
		again, _ := CheckDigests(ctx, cpu, ch, chCID, testSecret, []peer.ID{v})
		if !bytes.Equal(d, again[v]) {
			t.Fatal("digest computed alone differs from the batch's")
		}
		// Another secret assigns another row (but for 1 chance in N): the
		// digest must then change.
		other, _ := CheckDigests(ctx, cpu, ch, chCID, []byte("another secret"), []peer.ID{v})
		if otherRow, _ := CheckLeaf(ch, []byte("another secret"), v); otherRow != row && bytes.Equal(d, other[v]) {
			t.Fatal("digest does not follow the secret's row")
		}
		seen[string(d)] = true
	}
	if len(seen) != 8 || len(rows) < 2 {
		t.Fatalf("8 verifiers got %d digests over %d rows", len(seen), len(rows))
	}
	if d, err := CheckDigests(ctx, cpu, &pb.Challenge{Workload: pb.Workload_WORKLOAD_VRAM}, chCID, testSecret, verifiers); d != nil || err != nil {
		t.Fatalf("challenge with no leaves: digest %x, %v; want none", d, err)
	}
}

// TestCheckDigestVRAM: a VRAM challenge's digest hashes the output of the
// verifier's lane, as the full workload (every block held in memory)
// computes it.
func TestCheckDigestVRAM(t *testing.T) {
	ctx := t.Context()
	ch := vramChallenge(t, smallVRAM)
	_, chCID, err := MessageCID(ch)
	if err != nil {
		t.Fatal(err)
	}
	outputs, _, err := gpu.NewCPU().VRAM(ctx, Seed(ch), smallVRAM)
	if err != nil {
		t.Fatal(err)
	}
	verifiers := []peer.ID{newPeer(t), newPeer(t), newPeer(t), newPeer(t)}
	all, err := CheckDigests(ctx, gpu.NewCPU(), ch, chCID, testSecret, verifiers)
	if err != nil || len(all) != len(verifiers) {
		t.Fatalf("%d digests for %d verifiers, %v", len(all), len(verifiers), err)
	}
	lanes := map[int]bool{}
	for _, v := range verifiers {
		lane, _ := CheckLeaf(ch, testSecret, v)
		lanes[lane] = true
		if !bytes.Equal(all[v], wantDigest(chCID, v, lane, outputs[lane][:])) {
			t.Fatalf("verifier %s: digest does not hash lane %d's output", v, lane)
		}
	}
	if len(lanes) < 2 {
		t.Fatalf("4 verifiers share lane(s) %v", lanes)
	}
	bad := proto.Clone(ch).(*pb.Challenge)
	bad.VramRounds = 0
	if _, err := CheckDigests(ctx, gpu.NewCPU(), bad, chCID, testSecret, verifiers); !errors.Is(err, ErrMalformed) {
		t.Fatalf("VRAM challenge with 0 rounds: %v, want ErrMalformed", err)
	}
}

// TestCheckDigestBF16: a bf16 challenge's digest hashes the exact row,
// computed here in integers from the bf16 bit patterns (each input times
// 2^8 is an integer), not the rounded fp32 row a device commits to; the
// fp32 row agrees with it within BF16Tolerance.
func TestCheckDigestBF16(t *testing.T) {
	ctx := t.Context()
	cpu := gpu.NewCPU()
	ch, _, _ := newChallenge(t, newPeer(t), newPeer(t), time.Now())
	ch.Workload, ch.K = pb.Workload_WORKLOAD_GEMM_BF16, 1024
	_, chCID, err := MessageCID(ch)
	if err != nil {
		t.Fatal(err)
	}
	verifiers := []peer.ID{newPeer(t), newPeer(t), newPeer(t)}
	all, err := CheckDigests(ctx, cpu, ch, chCID, testSecret, verifiers)
	if err != nil || len(all) != len(verifiers) {
		t.Fatalf("%d digests for %d verifiers, %v", len(all), len(verifiers), err)
	}
	shape := ShapeOf(ch)
	scaled := func(b uint16) int64 { return int64(gpu.BF16ToFloat32(b) * 256) }
	for _, v := range verifiers {
		row, ok := CheckLeaf(ch, testSecret, v)
		if !ok {
			t.Fatal("bf16 challenge has no check row")
		}
		exact := make([]byte, 0, 8*shape.M)
		rounded, err := cpu.RowsBF16(ctx, Seed(ch), shape, []int{row})
		if err != nil {
			t.Fatal(err)
		}
		for j := range shape.M {
			var sum, abs int64
			for p := range shape.K {
				prod := scaled(gpu.BF16Bits(Seed(ch), gpu.MatrixBF16A, row, p)) * scaled(gpu.BF16Bits(Seed(ch), gpu.MatrixBF16B, p, j))
				sum += prod
				abs += max(prod, -prod)
			}
			exact = binary.LittleEndian.AppendUint64(exact, uint64(sum))
			if d := math.Abs(float64(rounded.Data[j])*(1<<16)-float64(sum)) / float64(abs); d > BF16Tolerance(shape.K) {
				t.Fatalf("fp32 row element %d deviates %.3g from the exact sum", j, d)
			}
		}
		if !bytes.Equal(all[v], wantDigest(chCID, v, row, exact)) {
			t.Fatalf("verifier %s: digest does not hash the exact row %d", v, row)
		}
	}
	ch.K = MaxBF16K + 1
	if _, err := CheckDigests(ctx, cpu, ch, chCID, testSecret, verifiers); err == nil {
		t.Fatal("bf16 challenge with k above MaxBF16K accepted")
	}
}
