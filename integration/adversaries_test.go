package integration

import (
	"os"
	"testing"
	"time"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/scoring"
)

// runDevnet starts a devnet of real peers on loopback and returns its
// report once epochs epochs have passed.
func runDevnet(t *testing.T, nodes int, adv map[node.Role]int, target, epoch time.Duration, epochs int64) node.Report {
	t.Helper()
	d, err := node.StartDevnet(t.Context(), node.DevnetConfig{
		Nodes: nodes, Adversaries: adv, DataDir: t.TempDir(), Target: target, EpochLength: epoch, GPU: "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for d.Epoch() < epochs {
		time.Sleep(500 * time.Millisecond)
	}
	r, err := d.Report()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Peers {
		t.Logf("%-14s score %.3f gossip %6.1f caught %3d recv %2d pass %2d fail %2d p50 %5.0f ms bad %.2f evidence %.1f",
			p.Role, p.FinalScore, p.GossipScore, p.CaughtEpoch, p.Challenges, p.Passed, p.Failed, p.LatencyP50, p.Trust.Bad, p.Trust.Evidence)
	}
	return r
}

// TestAdversaryMatrix runs one real peer of each adversary role but the
// relay and colluders (TestCollusionThirtyPercent) beside five honest
// peers, and checks that no honest peer is branded (caught or graylisted)
// and that every cheating prover (slow, lazy, replay, forged-nvml, sybil,
// onoff) ends below every honest peer; each peer's caught epoch and
// gossipsub score are logged. The lazy verifier is logged only (see
// below). The relay is left out: its answers are right and
// timely, computed on its accomplice's device, and on the spread schedule
// it is not caught (docs/adversaries.md); TestRelayWaves catches it on the
// wave schedule.
func TestAdversaryMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 12-peer devnet for about 2 minutes")
	}
	adv := map[node.Role]int{
		node.RoleSlow: 1, node.RoleLazy: 1, node.RoleReplay: 1, node.RoleForgedNVML: 1,
		node.RoleLazyVerifier: 1, node.RoleSybil: 1, node.RoleOnOff: 1,
	}
	// A 0.4 s target: at 0.2 s a catalog claim's deadline (slack 1.5)
	// would be mostly allowance, and the planner would refuse it.
	r := runDevnet(t, 12, adv, 400*time.Millisecond, 10*time.Second, 12)
	var honestMin = 2.0
	for _, p := range r.Peers {
		if !p.Role.Adversary() {
			honestMin = min(honestMin, p.FinalScore)
			if p.CaughtEpoch >= 0 || p.Graylisted {
				t.Errorf("honest peer %s branded: caught epoch %d, gossipsub score %.1f", p.PeerID, p.CaughtEpoch, p.GossipScore)
			}
		}
	}
	for _, p := range r.Peers {
		if !p.Role.Adversary() {
			continue
		}
		if p.Role == node.RoleLazyVerifier {
			// Caught in most runs (epoch 1 to 5): the check digest
			// contradicts it wherever another peer verified or re-checked
			// the same challenge, which in a short run on a busy runner
			// may be too few times (docs/adversaries.md). Logged, not
			// asserted.
			continue
		}
		// Every cheating prover ends below every honest peer. Whether the
		// observer has it below the graylist threshold by the last epoch
		// varies with the machine's load (replay and slow sit near it on a
		// busy 2-core runner): logged above, not asserted.
		if p.FinalScore >= honestMin {
			t.Errorf("%s scores %.3f, honest minimum %.3f", p.Role, p.FinalScore, honestMin)
		}
	}
}

// TestCollusionThirtyPercent: three colluders among ten peers attest for
// each other and against everyone else, and cheat when challenged; every
// honest peer's view keeps every honest peer above every colluder.
func TestCollusionThirtyPercent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 10-peer devnet for about a minute")
	}
	d, err := node.StartDevnet(t.Context(), node.DevnetConfig{
		Nodes: 10, Adversaries: map[node.Role]int{node.RoleColluder: 3}, DataDir: t.TempDir(),
		Target: 200 * time.Millisecond, GPU: "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for d.Epoch() < 7 {
		time.Sleep(500 * time.Millisecond)
	}
	for _, o := range d.Nodes {
		if o.Role().Adversary() {
			continue
		}
		minHonest, maxColluder := 2.0, -1.0
		for _, p := range d.Nodes {
			if p == o {
				continue
			}
			s := o.Book().Score(p.ID().String())
			if p.Role().Adversary() {
				maxColluder = max(maxColluder, s)
			} else {
				minHonest = min(minHonest, s)
			}
		}
		if maxColluder >= minHonest {
			pt := map[string]scoring.PeerTrust{}
			for _, p := range d.Nodes {
				pt[string(p.Role())+" "+p.ID().String()[46:]], _ = o.Book().PeerTrust(p.ID().String())
			}
			t.Fatalf("in %s's view a colluder scores %.3f ≥ the honest minimum %.3f: %v", o.ID(), maxColluder, minHonest, pt)
		}
		t.Logf("%s: honest min %.3f, colluder max %.3f", o.ID().String()[46:], minHonest, maxColluder)
	}
}

// TestRelayWaves: a relay and the accomplice whose device it borrows, beside
// one honest peer with a device (core) of its own, on the wave schedule
// ([challenge] waves = 1) with a slack below 2: both identities on the
// shared device are challenged at the same instant every epoch, the device
// answers one of them at least a proof late, and the relay ends below the
// honest peer. On the default spread schedule the same relay passes
// everything (docs/adversaries.md), which is why the 20-peer table does not
// catch it.
//
// It times proofs against a slack of 1.3, so it needs the machine to
// itself: `go test ./...` runs packages side by side, and .ci/run runs it
// alone with POAI_TIMING_TEST=1.
func TestRelayWaves(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-peer devnet for about 100 seconds")
	}
	if os.Getenv("POAI_TIMING_TEST") == "" {
		t.Skip("times proofs on a slack of 1.3, so it must run alone: POAI_TIMING_TEST=1 go test -run TestRelayWaves ./integration/ (.ci/run does)")
	}
	d, err := node.StartDevnet(t.Context(), node.DevnetConfig{
		Nodes: 3, Adversaries: map[node.Role]int{node.RoleRelay: 1}, DataDir: t.TempDir(), GPU: "off",
		Target: time.Second, Slack: 1.3, Allowance: 200 * time.Millisecond, Waves: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	give := time.After(4 * time.Minute)
	for d.Epoch() < 10 {
		select {
		case <-give:
			t.Fatalf("only %d epochs after 4 minutes", d.Epoch())
		case <-time.After(500 * time.Millisecond):
		}
	}
	r, err := d.Report()
	if err != nil {
		t.Fatal(err)
	}
	// Node 0 proves on its own core; node 1 is the accomplice (devnet
	// wiring: relay j borrows honest node j+1's device).
	own := d.Nodes[0].ID().String()
	var ownScore, relayScore, relayMissing, ownP50 = -1.0, -1.0, 0.0, 0.0
	for _, p := range r.Peers {
		t.Logf("%-7s %s score %.3f recv %2d pass %2d fail %2d p50 %5.0f ms missing %.2f",
			p.Role, p.PeerID[len(p.PeerID)-6:], p.FinalScore, p.Challenges, p.Passed, p.Failed, p.LatencyP50, p.Trust.Missing)
		switch {
		case p.PeerID == own:
			ownScore, ownP50 = p.FinalScore, p.LatencyP50
		case p.Role == node.RoleRelay:
			relayScore, relayMissing = p.FinalScore, p.Trust.Missing
		}
	}
	if ownScore < 0 || relayScore < 0 {
		t.Fatalf("report lacks the honest peer or the relay: %+v", r.Peers)
	}
	// The premise: proofs take about their anticipated 1 s, so two in a
	// row (2 s) miss the 1.5 s deadline. The devnet sizes them from a
	// throughput measured at start; when that measurement ran slow (a
	// busy machine), proofs finish early and two fit in the deadline.
	// That says nothing about waves: skip with the figures.
	if ownP50 < 800 {
		t.Skipf("proofs ran at %.0f ms against 1,000 ms anticipated (the start-up measurement was off): two in a row fit the 1.5 s deadline, so this run cannot test waves", ownP50)
	}
	if relayScore >= ownScore {
		t.Fatalf("relay scores %.3f, the honest peer with its own device %.3f", relayScore, ownScore)
	}
	// Below it for misses, the shared device's signature, not for
	// anything else.
	if relayMissing < 0.05 {
		t.Fatalf("relay's missed share %.2f: its collisions were not counted", relayMissing)
	}
}

// TestProtocolCheats runs the adversaries that attack the protocol around
// the proofs rather than the arithmetic, beside six honest peers:
//   - late-junk claims six times its device, lets first tries go
//     unanswered and, just before its late retry, posts a junk commitment
//     to the missed challenge, so that waiting on it would excuse the
//     retry's lateness (node.busyOverlap now excuses only a verified,
//     timely answer);
//   - equivocator computes 95 % of the rows, shows the challenger one root
//     and grinds a second for the verifiers once the secret is out (the
//     reveal now names the root it opens, and two signed roots are a
//     wrong answer);
//   - voider sends a junk commitment to the verifiers alone and never
//     opens, so that no secret is revealed (verifiers now hand the
//     commitment to the challenger, and the missing opening is no answer).
//
// Each must end below every honest peer and below the graylist threshold,
// with no honest peer branded.
func TestProtocolCheats(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 9-peer devnet for about 90 seconds")
	}
	adv := map[node.Role]int{node.RoleLateJunk: 1, node.RoleEquivocator: 1, node.RoleVoider: 1}
	r := runDevnet(t, 9, adv, 400*time.Millisecond, 10*time.Second, 8)
	honestMin := 2.0
	for _, p := range r.Peers {
		if !p.Role.Adversary() {
			honestMin = min(honestMin, p.FinalScore)
			if p.Graylisted {
				t.Errorf("honest peer %s graylisted: gossipsub score %.1f", p.PeerID, p.GossipScore)
			}
		}
	}
	seen := map[node.Role]bool{}
	for _, p := range r.Peers {
		if !p.Role.Adversary() {
			continue
		}
		seen[p.Role] = true
		if p.FinalScore >= honestMin {
			t.Errorf("%s scores %.3f, honest minimum %.3f", p.Role, p.FinalScore, honestMin)
		}
		if !p.Graylisted {
			t.Errorf("%s not graylisted: gossipsub score %.1f, integrity %.3f", p.Role, p.GossipScore, p.FinalScore)
		}
	}
	for role := range adv {
		if !seen[role] {
			t.Errorf("no %s in the report", role)
		}
	}
}

// TestColludingChallenger: a colluding challenger and its target beside
// two honest peers. The challenger leaks its opening secret to the target
// whenever it challenges it, and the target, computing 90 % of the rows
// of every product, grinds its root against the leaked secret. The opened
// rows also depend on the verifiers' shares, which no leak gives away, so
// the ground roots fail like the rest: the target ends below every honest
// peer and below the graylist threshold, and no honest peer is branded.
// (TestLeakedSecretGrindingFails shows the grinding itself: it succeeds
// against the leaked secret alone and fails with the shares.)
func TestColludingChallenger(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 4-peer devnet for about 2 minutes")
	}
	d, err := node.StartDevnet(t.Context(), node.DevnetConfig{
		Nodes: 4, Adversaries: map[node.Role]int{node.RoleColludingChallenger: 2}, DataDir: t.TempDir(),
		Target: 400 * time.Millisecond, EpochLength: 10 * time.Second, GPU: "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for d.Epoch() < 12 {
		time.Sleep(500 * time.Millisecond)
	}
	r, err := d.Report()
	if err != nil {
		t.Fatal(err)
	}
	// Nodes 0 and 1 are honest, 2 the colluding challenger, 3 its target.
	target := d.Nodes[3].ID().String()
	honestMin := 2.0
	for _, p := range r.Peers {
		who := string(p.Role)
		if p.PeerID == target {
			who += " (target)"
		}
		t.Logf("%-31s score %.3f gossip %6.1f caught %3d recv %2d pass %2d fail %2d p50 %5.0f ms bad %.2f",
			who, p.FinalScore, p.GossipScore, p.CaughtEpoch, p.Challenges, p.Passed, p.Failed, p.LatencyP50, p.Trust.Bad)
		if !p.Role.Adversary() {
			honestMin = min(honestMin, p.FinalScore)
			if p.CaughtEpoch >= 0 || p.Graylisted {
				t.Errorf("honest peer %s branded: caught epoch %d, gossipsub score %.1f", p.PeerID, p.CaughtEpoch, p.GossipScore)
			}
		}
	}
	for _, p := range r.Peers {
		if p.PeerID != target {
			continue
		}
		if p.FinalScore >= honestMin {
			t.Errorf("colluding target scores %.3f, honest minimum %.3f", p.FinalScore, honestMin)
		}
		if !p.Graylisted {
			t.Errorf("colluding target not graylisted: gossipsub score %.1f", p.GossipScore)
		}
	}
}
