package integration

import (
	"testing"
	"time"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
)

// TestEmulatedDevices runs six honest peers (two of them on emulated
// devnet A100 80GB devices, claiming them) beside a sibling (a devnet
// A100 40GB claiming the 80GB), an inflated claim (two devnet A100 80GB
// on one) and a VRAM dodger (half the memory, a 16th of the hash rate
// claimed), challenged on the VRAM workload alone: the three lie about
// memory or count, not compute, so on the int8 and bf16 workloads they
// pass. Each ends below every honest peer and graylisted; no honest peer
// is branded.
func TestEmulatedDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 9-peer devnet for about 2 minutes")
	}
	const epochs = 12
	d, err := devnet.Start(t.Context(), devnet.Config{
		Nodes: 9, Adversaries: map[node.Role]int{node.RoleSibling: 1, node.RoleInflate: 1, node.RoleVRAMDodger: 1},
		DataDir: t.TempDir(), Target: 400 * time.Millisecond, EpochLength: 8 * time.Second, GPU: "off",
		Workloads: []string{"vram"}, Emulated: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t.Logf("emulated catalog scale: compute %.3g, memory %.3g", d.Scale.Compute, d.Scale.Memory)
	for d.Epoch() < epochs {
		time.Sleep(500 * time.Millisecond)
	}
	r, err := d.Report()
	if err != nil {
		t.Fatal(err)
	}
	honestMin := 2.0
	for _, p := range r.Peers {
		t.Logf("%-12s %-8s score %.3f gossip %6.1f caught %3d recv %2d pass %2d fail %2d p50 %5.0f ms missing %.2f evidence %.1f",
			p.Role, p.Backend, p.FinalScore, p.GossipScore, p.CaughtEpoch, p.Challenges, p.Passed, p.Failed, p.LatencyP50, p.Trust.Missing, p.Trust.Evidence)
		if !p.Role.Adversary() {
			honestMin = min(honestMin, p.FinalScore)
			if p.CaughtEpoch >= 0 || p.Graylisted {
				t.Errorf("honest peer %s (%s) branded: caught epoch %d, gossipsub score %.1f", p.PeerID, p.Backend, p.CaughtEpoch, p.GossipScore)
			}
		}
	}
	for _, p := range r.Peers {
		if !p.Role.Adversary() {
			continue
		}
		if p.FinalScore >= honestMin {
			t.Errorf("%s scores %.3f, honest minimum %.3f", p.Role, p.FinalScore, honestMin)
		}
		if !p.Graylisted {
			t.Errorf("%s not graylisted: gossipsub score %.1f", p.Role, p.GossipScore)
		}
	}
}
