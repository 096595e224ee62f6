package challenge

import (
	"errors"
	"github.com/libp2p/go-libp2p/core/peer"
	"testing"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// TestMeasureVerifierCostInt8: the measurement runs both parts of an
// int8 verifier's work, and the Freivalds part grows with the projection
// it computes (K·M); other workloads are refused.
func TestMeasureVerifierCostInt8(t *testing.T) {
	secret := []byte("verifier cost secret")
	cost := func(k, m int) VerifierCost {
		ch := &pb.Challenge{Version: 1, Workload: pb.Workload_WORKLOAD_GEMM_INT8, N: 1024, K: uint32(k), M: uint32(m),
			Openings: 66, Nonce: []byte("nonce-0123456789"), DeadlineMs: 1, RevealHash: RevealHash(secret)}
		_, chCID, err := MessageCID(ch)
		if err != nil {
			t.Fatal(err)
		}
		c, err := MeasureVerifierCostInt8(t.Context(), gpu.NewCPU(gpu.WithWorkers(1)), ch, chCID, secret, []peer.ID{"verifier"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	small, big := cost(128, 128), cost(1024, 1024)
	if small.Freivalds <= 0 || small.Digest <= 0 {
		t.Fatalf("a part of the work was not timed: %+v", small)
	}
	if big.Freivalds < 4*small.Freivalds {
		t.Errorf("64 times the projection took %v against %v", big.Freivalds, small.Freivalds)
	}
	vram := &pb.Challenge{Workload: pb.Workload_WORKLOAD_VRAM}
	if _, err := MeasureVerifierCostInt8(t.Context(), gpu.NewCPU(), vram, CIDOf([]byte("vram")), secret, []peer.ID{"v"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("VRAM challenge: err %v, want ErrMalformed", err)
	}
}
