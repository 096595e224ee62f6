package integration

import (
	"os/exec"
	"testing"
	"time"

	"github.com/poai-network/poai/node"
)

// TestNoFalseFailuresUnderContention runs six real peers (four honest, a
// slow and a lazy adversary) while two other processes burn both of the
// machine's cores, started once the devnet has measured its CPU: the
// proofs then run at about half the speed they were sized for. No honest
// peer may be attested failing by any honest verifier (a verifier that
// cannot keep up withholds its verdict; an honest prover's proof fits its
// slack), and the adversaries must still be caught.
func TestNoFalseFailuresUnderContention(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet for about 45 s beside two CPU burners")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to burn the CPU with:", err)
	}
	d, err := node.StartDevnet(t.Context(), node.DevnetConfig{
		Nodes:       6,
		Adversaries: map[node.Role]int{node.RoleSlow: 1, node.RoleLazy: 1},
		DataDir:     t.TempDir(),
		Target:      250 * time.Millisecond,
		EpochLength: 4 * time.Second,
		GPU:         "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for range 2 {
		burn := exec.CommandContext(t.Context(), sh, "-c", "while :; do :; done")
		if err := burn.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			burn.Process.Kill()
			burn.Wait()
		}()
	}
	for d.Epoch() < 10 {
		time.Sleep(250 * time.Millisecond)
	}
	r, err := d.Report()
	if err != nil {
		t.Fatal(err)
	}
	honest := map[string]bool{}
	for _, o := range d.Nodes {
		if !o.Role().Adversary() {
			honest[o.ID().String()] = true
		}
	}
	for _, p := range r.Peers {
		t.Logf("%-8s score %.3f recv %d pass %d fail %d p50 %.0f ms p99 %.0f ms", p.Role, p.FinalScore, p.Challenges, p.Passed, p.Failed, p.LatencyP50, p.LatencyP99)
		if p.Role.Adversary() && p.Failed == 0 {
			t.Errorf("adversary %s failed no challenge under contention", p.Role)
		}
	}
	for _, o := range d.Nodes {
		if o.Role().Adversary() {
			continue
		}
		for _, a := range o.Book().Retained() {
			if honest[a.Target] && honest[a.Verifier] && !a.Pass() {
				t.Errorf("%s holds a false failure: %s attested %s %s on %s (latency %.0f ms, deadline %.0f ms)",
					o.ID(), a.Verifier, a.Target, a.Verdict, a.Challenge, a.LatencyMS, a.DeadlineMS)
			}
		}
	}
	if !r.Separated {
		t.Errorf("adversary max %.3f not below honest min %.3f", r.AdversaryMax, r.HonestMin)
	}
}
