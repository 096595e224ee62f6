package integration

import (
	"testing"
	"time"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
	"github.com/poai-network/poai/scoring"
)

// voids sums poai_challenges_void_total{cause="reveal"} over nodes.
func voids(t *testing.T, nodes []*node.Node) float64 {
	t.Helper()
	var sum float64
	for _, n := range nodes {
		mfs, err := n.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "poai_challenges_void_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetValue() == "reveal" {
						sum += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return sum
}

// TestShareWithholderFramesNobody: a share-withholder, as a verifier,
// commits to a share that the target must list and never reveals it, so
// the target cannot open what the shares sample. Beside five honest
// peers: the move happens (challenges are voided for a missing share),
// yet no honest peer is graylisted and honest peers fail at most a tenth
// of their challenges (the odd miss of a devnet on two cores; framed, they
// failed over half), and the withholder, contradicted each time, ends
// below every honest peer and graylisted.
// Before the void rule (finalize), every honest verifier attested
// NO_ANSWER against the honest targets it framed.
func TestShareWithholderFramesNobody(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 6-peer devnet for about 80 seconds")
	}
	d, err := devnet.Start(t.Context(), devnet.Config{
		Nodes: 6, Adversaries: map[node.Role]int{node.RoleShareWithholder: 1}, DataDir: t.TempDir(),
		Target: 400 * time.Millisecond, EpochLength: 10 * time.Second, GPU: "off",
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
	honestMin, withheld := 2.0, -1.0
	honestFailed, honestChallenges := 0, 0
	for _, p := range r.Peers {
		t.Logf("%s %-16s score %.3f gossip %6.1f recv %2d pass %2d fail %2d bad %.2f evidence %.1f",
			p.PeerID[len(p.PeerID)-6:], p.Role, p.FinalScore, p.GossipScore, p.Challenges, p.Passed, p.Failed, p.Trust.Bad, p.Trust.Evidence)
		switch p.Role {
		case node.RoleHonest:
			honestMin = min(honestMin, p.FinalScore)
			honestFailed += p.Failed
			honestChallenges += p.Challenges
			if p.Graylisted {
				t.Errorf("honest %s framed: graylisted, %d of %d challenges failed", p.PeerID, p.Failed, p.Challenges)
			}
			if p.Failed > 0 {
				// What failed, as the first node's book holds it: a
				// devnet on two cores misses the odd deadline on its own.
				recs, _ := d.Nodes[0].Book().Attestations(p.PeerID, 64)
				for _, a := range recs {
					if a.Verdict != scoring.VerdictPass {
						t.Logf("  %s: %s by %s, latency %.0f of %.0f ms", p.PeerID[len(p.PeerID)-6:], a.Verdict, a.Verifier[len(a.Verifier)-6:], a.LatencyMS, a.DeadlineMS)
					}
				}
			}
		case node.RoleShareWithholder:
			withheld = p.FinalScore
			if !p.Graylisted {
				t.Errorf("share-withholder not graylisted: gossipsub score %.1f", p.GossipScore)
			}
		}
	}
	// Framing fails most of its targets' challenges (over half with the
	// void rule reverted); a tenth is the odd miss of a busy devnet.
	if honestFailed*10 > honestChallenges {
		t.Errorf("honest peers failed %d of %d challenges", honestFailed, honestChallenges)
	}
	v := voids(t, d.Nodes)
	t.Logf("challenges voided for a missing secret or share: %v (summed over nodes)", v)
	if v == 0 {
		t.Fatal("no challenge was voided: the withholder never withheld a listed share")
	}
	if withheld < 0 || withheld >= honestMin {
		t.Errorf("share-withholder scores %.3f, honest minimum %.3f", withheld, honestMin)
	}
}
