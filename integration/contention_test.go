package integration

import (
	"os/exec"
	"testing"
	"time"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
)

// TestNoFalseFailuresUnderContention runs six real peers (four honest, a
// slow and a lazy adversary) while two other processes burn both of the
// machine's cores, from once the devnet has measured its CPU to epoch 6:
// the proofs then run at about half the speed they were sized for. No
// honest peer may be attested failing by any honest verifier (a verifier
// starved of CPU withholds its timing verdicts, node.MaxStarvedShare), the
// lazy adversary's wrong answers are still attested under load, and the
// slow one's misses once the load is gone.
func TestNoFalseFailuresUnderContention(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet for about 45 s beside two CPU burners")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to burn the CPU with:", err)
	}
	d, err := devnet.Start(t.Context(), devnet.Config{
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
	var burners []*exec.Cmd
	stop := func() {
		for _, b := range burners {
			b.Process.Kill()
			b.Wait()
		}
		burners = nil
	}
	defer stop()
	for range 2 {
		burn := exec.CommandContext(t.Context(), sh, "-c", "while :; do :; done")
		if err := burn.Start(); err != nil {
			t.Fatal(err)
		}
		burners = append(burners, burn)
	}
	for d.Epoch() < 6 {
		time.Sleep(250 * time.Millisecond)
	}
	stop()
	for d.Epoch() < 11 {
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
