package devnet

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/node"
)

// TestEmulatedRolesVRAM: on a devnet's emulated catalog (fitted to a CPU
// of a devnet's measured rates), an honest emulated A100 80GB meets its
// VRAM deadline, and the sibling (an A100 40GB claiming the 80GB), the
// inflated claim (two A100 80GB on one) and the VRAM dodger (half the
// memory, a 16th of the hash rate claimed) miss theirs: each claim is
// the one a started node gossips, planned as its peers plan it, the
// answers computed by emulated devices.
func TestEmulatedRolesVRAM(t *testing.T) {
	cfg := node.DefaultConfig()
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.MDNS = false
	cfg.Metrics.Listen = ""
	cfg.Challenge.EpochLength = node.Duration(time.Hour)                 // no schedule runs during the test
	cfg.Challenge.TargetDuration = node.Duration(400 * time.Millisecond) // the devnet's: at less, a catalog claim's int8 deadline is mostly allowance
	cfg.Device = node.DeviceConfig{Backend: "cpu"}
	p := cfg.Challenge.Planner()
	// A devnet's single-core CPU, roughly.
	scale := fitDevnetScale(gpu.Throughput{Int8TOPS: 0.02, BF16TFLOPS: 0.004, HashGHps: 0.01}, p)
	cat := gpu.DevnetCatalog(scale)
	p.Catalog = cat
	type result struct {
		role     node.Role
		claim    *pb.DeviceClaim
		plan     challenge.Plan
		took     time.Duration
		err      error
		flags    []string
		checkErr error
	}
	var workloads []pb.Workload
	for _, w := range cfg.Challenge.Workloads {
		wl, err := node.ParseWorkload(w)
		if err != nil {
			t.Fatal(err)
		}
		workloads = append(workloads, wl)
	}
	roles := []node.Role{node.RoleHonest, node.RoleSibling, node.RoleInflate, node.RoleVRAMDodger}
	results := make([]result, len(roles))
	var wg sync.WaitGroup
	for i, role := range roles {
		model, hold, _ := role.EmulatedDevice()
		if role == node.RoleHonest {
			model, hold = EmulatedHonestModel, 1
		}
		dev, th, err := emulatedBackend(gpu.NewCPU(gpu.WithWorkers(1)), p, model, hold, 1/role.ClaimFactor(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		n, err := node.New(t.TempDir(), cfg, node.WithRole(role), node.WithBackend(dev), node.WithMeasured(th), node.WithCatalog(cat))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		claim := n.Claim()
		pl, err := p.Plan(claim, pb.Workload_WORKLOAD_VRAM)
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		results[i] = result{role: role, claim: claim, plan: pl, flags: challenge.CrossCheckIn(cat, claim), checkErr: p.Check(claim, workloads)}
		ch := &pb.Challenge{Version: 1, Epoch: 1, Nonce: make([]byte, 32), Target: []byte(peer.ID("target"))}
		pl.Apply(ch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(t.Context(), pl.Deadline+pl.Deadline/4)
			defer cancel()
			start := time.Now()
			_, err := challenge.Run(ctx, dev, ch, cid.Undef, peer.ID("target"))
			results[i].took, results[i].err = time.Since(start), err
		}()
	}
	wg.Wait()
	for _, r := range results {
		t.Logf("%-12s claims %q ×%d, %d B, %.3g GH/s: %d blocks, anticipated %v, deadline %v, took %v (%v); flags %q",
			r.role, r.claim.GetModel(), r.claim.GetCount(), r.claim.GetVramBytes(), r.claim.GetHashGhps(),
			r.plan.VRAM.Lanes*r.plan.VRAM.Blocks, r.plan.Anticipated.Round(time.Millisecond), r.plan.Deadline.Round(time.Millisecond),
			r.took.Round(time.Millisecond), r.err, r.flags)
		if r.checkErr != nil {
			t.Errorf("%s: claim unplannable: %v", r.role, r.checkErr)
		}
		if !strings.HasPrefix(r.claim.GetModel(), gpu.DevnetPrefix) {
			t.Errorf("%s claims %q, not an emulated model", r.role, r.claim.GetModel())
		}
		late := r.err != nil || r.took > r.plan.Deadline
		if late != (r.role != node.RoleHonest) {
			t.Errorf("%s: took %v (%v) against a deadline of %v", r.role, r.took, r.err, r.plan.Deadline)
		}
		counted := slices.ContainsFunc(r.flags, func(f string) bool { return strings.Contains(f, "devices") })
		if counted != (r.role == node.RoleInflate) {
			t.Errorf("%s: flags %q", r.role, r.flags)
		}
	}
}
