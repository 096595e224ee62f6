package integration

import (
	"testing"
	"time"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
)

// Bounds TestSybilFlood checks (docs/adversaries.md, "Sybil floods"). On
// the 2-core machine honest peers scored 0.63–1.00 (mean 0.85) with the
// flood under other load, 0.88–1.00 (0.93) on a quieter machine, and
// 0.77–1.00 (0.88) without the flood; under load one honest peer fell to
// 0.38 in one run, so the floor on each peer is lower than the bound on
// their mean. Before slots weighed earned trust the same network left
// honest peers at 0.05–0.89 (mean 0.35) and 0.09–0.96 (mean 0.52) in two
// runs, and the flood held two thirds of the slots.
const (
	sybilFloodHonestFloor = 0.25
	sybilFloodHonestMean  = 0.6
	// sybilFloodSlotShare bounds the flood's share of the challenger and
	// verifier slots from sybilFloodSettled on.
	sybilFloodSlotShare = 0.1
	// sybilFloodSettled is the epoch by which the honest peers have a
	// pass on record that counts (first challenges in epochs 0–1, challenge.ProvenLag 2).
	sybilFloodSettled = 4
)

// TestSybilFlood: eleven identities that only announce a device claim
// (sybil-flood: no device, no proofs, no challenges, no verdicts) beside
// seven honest peers and a lazy prover, more than the honest peers in
// number. Challenger and verifier slots go to peers with a passed
// challenge on record first (node/selection.go), so once the honest peers
// have passed one the flood holds (nearly) no slot — seven honest peers,
// so that a challenge of an honest target by an honest challenger still
// has k + 2 = 5 proven candidates for its verifier slots (with six, one
// slot went to the flood by design until the flood was graylisted, and
// the bound then measured how fast that happened): from epoch
// sybilFloodSettled on it
// holds at most sybilFloodSlotShare of either kind; every honest peer
// stays at or above sybilFloodHonestFloor, out of the graylist, and their
// mean at or above sybilFloodHonestMean; the lazy prover is judged
// (graylisted, below every honest peer); every flood identity ends below
// every honest peer. Slots held are counted by role and logged, over the
// whole run and from sybilFloodSettled on.
func TestSybilFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 19-peer devnet for about 2 minutes")
	}
	d, err := devnet.Start(t.Context(), devnet.Config{
		Nodes: 19, Adversaries: map[node.Role]int{node.RoleLazy: 1, node.RoleSybilFlood: 11}, DataDir: t.TempDir(),
		Target: 400 * time.Millisecond, EpochLength: 10 * time.Second, GPU: "off",
		// Each node proves on its own emulated device: on the host's two
		// cores one honest node in five runs fell behind the others'
		// proofs and missed its own (a test-bed failure, issue 21's).
		Devices: devnet.DevicesEmulated,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	report := func(epoch int64) devnet.Report {
		for d.Epoch() < epoch {
			time.Sleep(500 * time.Millisecond)
		}
		r, err := d.Report()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	settled := report(sybilFloodSettled)
	r := report(10)
	type slots struct{ peers, challenger, verifier, lateChallenger, lateVerifier int }
	early := map[string]devnet.PeerReport{}
	for _, p := range settled.Peers {
		early[p.PeerID] = p
	}
	byRole := map[node.Role]*slots{}
	var all slots
	honestMin, honestSum, honest := 2.0, 0.0, 0
	for _, p := range r.Peers {
		t.Logf("%-12s score %.3f gossip %6.1f caught %3d recv %2d pass %2d fail %2d p50 %5.0f ms slots: challenger %3d verifier %3d",
			p.Role, p.FinalScore, p.GossipScore, p.CaughtEpoch, p.Challenges, p.Passed, p.Failed, p.LatencyP50, p.ChallengerSlots, p.VerifierSlots)
		s := byRole[p.Role]
		if s == nil {
			s = &slots{}
			byRole[p.Role] = s
		}
		e := early[p.PeerID]
		for _, x := range []*slots{s, &all} {
			x.peers++
			x.challenger += p.ChallengerSlots
			x.verifier += p.VerifierSlots
			x.lateChallenger += p.ChallengerSlots - e.ChallengerSlots
			x.lateVerifier += p.VerifierSlots - e.VerifierSlots
		}
		if !p.Role.Adversary() {
			honestMin = min(honestMin, p.FinalScore)
			honestSum += p.FinalScore
			honest++
		}
	}
	for _, role := range node.Roles {
		if s := byRole[role]; s != nil {
			t.Logf("%-12s %2d peers hold %4d of %4d challenger slots and %4d of %4d verifier slots; from epoch %d on %4d of %4d and %4d of %4d",
				role, s.peers, s.challenger, all.challenger, s.verifier, all.verifier,
				sybilFloodSettled, s.lateChallenger, all.lateChallenger, s.lateVerifier, all.lateVerifier)
		}
	}
	if f := byRole[node.RoleSybilFlood]; f != nil {
		if c := float64(f.lateChallenger) / float64(max(all.lateChallenger, 1)); c > sybilFloodSlotShare {
			t.Errorf("from epoch %d the flood held %.0f%% of the challenger slots (bound %.0f%%)", sybilFloodSettled, 100*c, 100*sybilFloodSlotShare)
		}
		if v := float64(f.lateVerifier) / float64(max(all.lateVerifier, 1)); v > sybilFloodSlotShare {
			t.Errorf("from epoch %d the flood held %.0f%% of the verifier slots (bound %.0f%%)", sybilFloodSettled, 100*v, 100*sybilFloodSlotShare)
		}
	}
	if mean := honestSum / float64(max(honest, 1)); mean < sybilFloodHonestMean {
		t.Errorf("honest mean score %.3f, bound %.2f", mean, sybilFloodHonestMean)
	}
	for _, p := range r.Peers {
		switch {
		case !p.Role.Adversary():
			if p.FinalScore < sybilFloodHonestFloor || p.Graylisted {
				t.Errorf("honest peer %s scores %.3f (floor %.2f), gossipsub %.1f", p.PeerID, p.FinalScore, sybilFloodHonestFloor, p.GossipScore)
			}
		case p.Role == node.RoleLazy:
			if !p.Graylisted || p.FinalScore >= honestMin {
				t.Errorf("lazy prover not judged: score %.3f (honest minimum %.3f), gossipsub %.1f", p.FinalScore, honestMin, p.GossipScore)
			}
		default:
			if p.FinalScore >= honestMin {
				t.Errorf("%s %s scores %.3f, honest minimum %.3f", p.Role, p.PeerID, p.FinalScore, honestMin)
			}
		}
	}
}
