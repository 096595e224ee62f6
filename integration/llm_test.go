package integration

import (
	"testing"
	"time"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
)

// TestLLMAdversaries runs the llm workload alone on a devnet of real
// peers: five honest ones and one of each llm adversary (a smaller model,
// windowed attention, a short decode padded, a guessed decode run as a
// batched prefill, a replayed sequence). Every adversary must end below
// every honest peer and graylisted; no honest peer may fail a challenge
// or be graylisted.
func TestLLMAdversaries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 10-peer llm devnet for about 75 seconds")
	}
	adv := map[node.Role]int{node.RoleLazyLLM: 1, node.RoleCheapAttention: 1, node.RoleShortDecode: 1, node.RoleBatchedGuess: 1, node.RoleReplayLLM: 1}
	d, err := devnet.Start(t.Context(), devnet.Config{
		Nodes: 10, Adversaries: adv, DataDir: t.TempDir(), Target: 400 * time.Millisecond, EpochLength: 10 * time.Second,
		GPU: "off", Workloads: []string{"llm"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for d.Epoch() < 7 {
		time.Sleep(500 * time.Millisecond)
	}
	r, err := d.Report()
	if err != nil {
		t.Fatal(err)
	}
	honestMin := 2.0
	for _, p := range r.Peers {
		t.Logf("%-16s score %.3f gossip %6.1f caught %3d recv %2d pass %2d fail %2d p50 %5.0f ms",
			p.Role, p.FinalScore, p.GossipScore, p.CaughtEpoch, p.Challenges, p.Passed, p.Failed, p.LatencyP50)
		if p.Role.Adversary() {
			continue
		}
		honestMin = min(honestMin, p.FinalScore)
		if p.Graylisted || p.Failed > 0 {
			t.Errorf("honest peer %s: graylisted %v, %d failed challenges", p.PeerID, p.Graylisted, p.Failed)
		}
	}
	seen := map[node.Role]bool{}
	for _, p := range r.Peers {
		if !p.Role.Adversary() {
			continue
		}
		seen[p.Role] = true
		if p.FinalScore >= honestMin || !p.Graylisted || p.Failed == 0 {
			t.Errorf("%s: score %.3f (honest minimum %.3f), graylisted %v, %d failed", p.Role, p.FinalScore, honestMin, p.Graylisted, p.Failed)
		}
	}
	for role := range adv {
		if !seen[role] {
			t.Errorf("no %s in the report", role)
		}
	}
}
