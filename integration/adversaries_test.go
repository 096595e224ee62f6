package integration

import (
	"testing"
	"time"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// runDevnet starts a devnet of real peers on loopback and returns its
// report once epochs epochs have passed.
func runDevnet(t *testing.T, nodes int, adv map[node.Role]int, target, epoch time.Duration, epochs int64) devnet.Report {
	t.Helper()
	d, err := devnet.Start(t.Context(), devnet.Config{
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
// it is not caught (docs/adversaries.md); TestSharedDevices catches it on the
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
	d, err := devnet.Start(t.Context(), devnet.Config{
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

// TestSharedDevices: one device behind two identities, on emulated
// devices (devnet.DevicesEmulated) so that every honest peer has a device of
// its own and the host's cores hide nothing. A relay proves on its
// accomplice's device (honest node 1), and two shared-device identities
// share one; on the wave schedule ([challenge] waves = 1) with slack +
// allowance/target = 1.3 + 0.4 < 2, both identities of a device are
// challenged at the same instant and the device answers the second at
// least a proof late. The device runs its workloads first come, first
// served, the operator's best order: the relay's forwarded challenge
// always comes second (node.RelayRoundTrip), and of the shared pair the
// later arrival misses. So the relay and the pair's loser end below
// every honest peer with a device of its own, and the pair together
// earns less than two honest devices: one device's capacity, paid once.
func TestSharedDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 6-peer devnet for about 100 seconds")
	}
	d, err := devnet.Start(t.Context(), devnet.Config{
		Nodes: 6, Adversaries: map[node.Role]int{node.RoleRelay: 1, node.RoleSharedDevice: 2}, DataDir: t.TempDir(), GPU: "off",
		Devices: devnet.DevicesEmulated, Target: 500 * time.Millisecond, Slack: 1.3, Allowance: 200 * time.Millisecond, Waves: 1,
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
	if e := r.Emulator; e == nil || e.Overloaded {
		t.Fatalf("test bed, not a node: emulated devices overran %+v (more than %.0f%% measures the host)", e, 100*devnet.MaxOverrunShare)
	}
	t.Logf("emulated devices: %d workloads, %d overruns", r.Emulator.Workloads, r.Emulator.Overruns)
	// Devnet wiring: relay j borrows honest node j+1's device.
	accomplice := d.Nodes[1].ID().String()
	ownMin, relay, pair := 2.0, -1.0, []float64{}
	var relayMissing float64
	for _, p := range r.Peers {
		t.Logf("%-13s %s score %.3f recv %2d pass %2d fail %2d p50 %5.0f ms missing %.2f graylisted %v",
			p.Role, p.PeerID[len(p.PeerID)-6:], p.FinalScore, p.Challenges, p.Passed, p.Failed, p.LatencyP50, p.Trust.Missing, p.Graylisted)
		switch {
		case p.Role == node.RoleRelay:
			relay, relayMissing = p.FinalScore, p.Trust.Missing
		case p.Role == node.RoleSharedDevice:
			pair = append(pair, p.FinalScore)
		case p.PeerID != accomplice:
			ownMin = min(ownMin, p.FinalScore)
			if p.Graylisted {
				t.Errorf("honest %s with a device of its own is graylisted", p.PeerID)
			}
		}
	}
	if relay < 0 || len(pair) != 2 || ownMin > 1 {
		t.Fatalf("report lacks a role: %+v", r.Peers)
	}
	if relay >= ownMin {
		t.Errorf("relay scores %.3f, the lowest honest peer with its own device %.3f", relay, ownMin)
	}
	if relayMissing < 0.05 {
		t.Errorf("relay's missed share %.2f: its collisions were not counted", relayMissing)
	}
	if lo := min(pair[0], pair[1]); lo >= ownMin {
		t.Errorf("the shared pair's lower score %.3f is not below the lowest honest peer with its own device %.3f", lo, ownMin)
	}
	if sum := pair[0] + pair[1]; sum >= 2*ownMin {
		t.Errorf("the shared pair earns %.3f + %.3f, as much as two honest devices (2 × %.3f)", pair[0], pair[1], ownMin)
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
//     commitment to the challenger, and the missing opening is no answer);
//   - epoch-skew proves honestly but signs a junk commitment naming the
//     next epoch as soon as it is challenged, so that peers forwarding it
//     before they hear the challenge are charged an invalid message by
//     those that heard it first (such a message is now ignored).
//
// Each cheating prover must end below every honest peer and below the
// graylist threshold, and no honest peer may be branded or charged for
// what it forwarded.
func TestProtocolCheats(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 10-peer devnet for about 90 seconds")
	}
	adv := map[node.Role]int{node.RoleLateJunk: 1, node.RoleEquivocator: 1, node.RoleVoider: 1, node.RoleEpochSkew: 1}
	r := runDevnet(t, 10, adv, 400*time.Millisecond, 10*time.Second, 8)
	honestMin := 2.0
	for _, p := range r.Peers {
		if !p.Role.Adversary() {
			honestMin = min(honestMin, p.FinalScore)
			if p.Graylisted {
				t.Errorf("honest peer %s graylisted: gossipsub score %.1f", p.PeerID, p.GossipScore)
			}
			// One invalid message costs −10 at the peer that got it: a
			// mean below −1 over the honest observers is at least one
			// such charge, here for forwarding the epoch-skew's junk.
			if p.GossipScore < -1 {
				t.Errorf("honest peer %s: gossipsub score %.1f, charged for messages it forwarded", p.PeerID, p.GossipScore)
			}
		}
	}
	seen := map[node.Role]bool{}
	for _, p := range r.Peers {
		if !p.Role.Adversary() {
			continue
		}
		seen[p.Role] = true
		if p.Role == node.RoleEpochSkew {
			// Its aim is the forwarders (checked above); it proves
			// honestly, and its ignored junk neither helps nor hurts it.
			continue
		}
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
	d, err := devnet.Start(t.Context(), devnet.Config{
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

// TestUnderpoweredFlagged: a device delivering 85 % of its claim answers
// every challenge inside the deadline's slack, so no verdict fails it; the
// speed test (scoring.SpeedMonitor) of the honest peers that verify it
// flags it, its integrity there drops to 0 and they graylist it, while no
// honest peer is flagged by anyone.
func TestUnderpoweredFlagged(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 6-peer devnet for about two minutes")
	}
	// Six peers: a verifier compares a target with the other peers of its
	// class, and needs four (scoring.SpeedParams.MinPeers).
	d, err := devnet.Start(t.Context(), devnet.Config{
		Nodes: 6, Adversaries: map[node.Role]int{node.RoleUnderpowered: 1}, DataDir: t.TempDir(), GPU: "off",
		Devices: devnet.DevicesEmulated, Target: 300 * time.Millisecond, Slack: 1.5, Allowance: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var cheat *node.Node
	for _, n := range d.Nodes {
		if n.Role() == node.RoleUnderpowered {
			cheat = n
		}
	}
	flaggers := func() (by []*node.Node) {
		for _, o := range d.Nodes {
			if o == cheat {
				continue
			}
			if st, ok := o.Observer().Speed(cheat.ID()); ok && st.Flagged {
				by = append(by, o)
			}
		}
		return by
	}
	give := time.After(4 * time.Minute)
	for len(flaggers()) < 1 {
		select {
		case <-give:
			t.Fatalf("after 4 minutes (%d epochs) flagged by %d honest peers", d.Epoch(), len(flaggers()))
		case <-time.After(time.Second):
		}
	}
	r, err := d.Report()
	if err != nil {
		t.Fatal(err)
	}
	if e := r.Emulator; e == nil || e.Overloaded {
		t.Fatalf("test bed, not a node: emulated devices overran %+v", e)
	}
	honestMin := 2.0
	for _, p := range r.Peers {
		t.Logf("%-12s %s score %.3f recv %2d pass %2d speed %.2f flagged by %d graylisted %v",
			p.Role, p.PeerID[len(p.PeerID)-6:], p.FinalScore, p.Challenges, p.Passed, p.Relative, p.FlaggedBy, p.Graylisted)
		if p.Role == node.RoleHonest {
			honestMin = min(honestMin, p.FinalScore)
			if p.FlaggedBy > 0 {
				t.Errorf("honest %s flagged by %d peers", p.PeerID, p.FlaggedBy)
			}
		}
	}
	for _, p := range r.Peers {
		if p.Role == node.RoleUnderpowered && p.Failed > 0 {
			t.Logf("the underpowered device failed %d of %d challenges (it is meant to pass them all)", p.Failed, p.Challenges)
		}
	}
	for _, o := range flaggers() {
		pt, _ := o.Book().PeerTrust(cheat.ID().String())
		// The trust round after the flag sets the integrity to 0.
		deadline := time.Now().Add(30 * time.Second)
		for !pt.Overclaimed && time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
			pt, _ = o.Book().PeerTrust(cheat.ID().String())
		}
		if !pt.Overclaimed || pt.Score != 0 || o.Observer().AppScore(cheat.ID()) > p2p.GraylistThreshold {
			t.Errorf("%s flagged it but holds integrity %.3f (overclaimed %v), app score %.0f", o.ID(), pt.Score, pt.Overclaimed, o.Observer().AppScore(cheat.ID()))
		}
	}
}
