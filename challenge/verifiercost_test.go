package challenge

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// TestMeasureVerifierCostInt8: the measurement runs both parts of an
// int8 verifier's work; other workloads are refused. (How long they take
// is what `poai bench --verifier-only` prints, not a unit test's
// business.) VerifierMACs counts the same work: |J|·k for B_J·r, k + |J|
// per opened row, and 32·k for the check digest.
func TestMeasureVerifierCostInt8(t *testing.T) {
	secret := []byte("verifier cost secret")
	for _, km := range [][2]int{{128, 128}, {1024, 1024}} {
		ch := &pb.Challenge{Version: 1, Workload: pb.Workload_WORKLOAD_GEMM_INT8, N: 1024, K: uint32(km[0]), M: uint32(km[1]),
			Openings: 66, Nonce: []byte("nonce-0123456789"), DeadlineMs: 1, RevealHash: RevealHash(secret)}
		_, chCID, err := MessageCID(ch)
		if err != nil {
			t.Fatal(err)
		}
		c, err := MeasureVerifierCostInt8(t.Context(), gpu.NewCPU(gpu.WithWorkers(1)), ch, chCID, secret, []peer.ID{"verifier"})
		if err != nil {
			t.Fatal(err)
		}
		if c.Freivalds <= 0 || c.Digest <= 0 {
			t.Fatalf("a part of the work was not timed: %+v", c)
		}
	}
	k, j := 1024.0, float64(CheckedColumns(66, 1024))
	if got, want := VerifierMACs(pb.Workload_WORKLOAD_GEMM_INT8, gpu.Shape{N: 1024, K: 1024, M: 1024}, 66), j*k+66*(k+j)+CheckColumns*k; got != want {
		t.Errorf("VerifierMACs %v, want %v", got, want)
	}
	vram := &pb.Challenge{Workload: pb.Workload_WORKLOAD_VRAM}
	if _, err := MeasureVerifierCostInt8(t.Context(), gpu.NewCPU(), vram, CIDOf([]byte("vram")), secret, []peer.ID{"v"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("VRAM challenge: err %v, want ErrMalformed", err)
	}
}
