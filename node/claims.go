package node

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/cuda"
	"github.com/poai-network/poai/gpu/nvml"
	"github.com/poai-network/poai/p2p"
)

// claimerRole is how a node states its device claim from the figures it
// configured or measured. The node consumes it through this interface only
// (buildClaim): honestClaimer states them as they are, and every
// ADVERSARY that lies in its claim (adversary.go: forged NVML, over-claim,
// sibling, inflate, VRAM dodger) is a separate implementation.
type claimerRole interface {
	// claim may rewrite c, the claim as measured and configured, against
	// the models of cat. It reports whether it also supplied c's device
	// reports; if not, a node proving on CUDA adds NVML's.
	claim(c *pb.DeviceClaim, cat *gpu.DeviceCatalog) (reported bool)
}

// honestClaimer claims what the node has.
type honestClaimer struct{}

func (honestClaimer) claim(*pb.DeviceClaim, *gpu.DeviceCatalog) bool { return false }

// buildClaim returns this node's device claim, measuring the backend for
// every figure the configuration leaves at 0.
func (n *Node) buildClaim(ctx context.Context) (*pb.DeviceClaim, error) {
	info := n.backend.Info()
	d := n.cfg.Device
	if d.Int8TOPS == 0 || d.BF16TFLOPS == 0 || d.HashGHps == 0 {
		m := n.o.measured
		if m == nil {
			ch := n.cfg.Challenge
			t, err := gpu.MeasureAllFor(ctx, n.backend, gpu.MeasureShapes{Int8K: ch.K, Int8M: ch.M, BF16K: ch.BF16K, BF16M: ch.BF16M})
			if err != nil {
				return nil, fmt.Errorf("measure backend: %w", err)
			}
			n.log.Info("measured backend", "backend", info.Backend, "int8_tops", t.Int8TOPS, "bf16_tflops", t.BF16TFLOPS, "hash_ghps", t.HashGHps)
			m = &t
		}
		d.Int8TOPS = cmp.Or(d.Int8TOPS, m.Int8TOPS)
		d.BF16TFLOPS = cmp.Or(d.BF16TFLOPS, m.BF16TFLOPS)
		d.HashGHps = cmp.Or(d.HashGHps, m.HashGHps)
	}
	claim := &pb.DeviceClaim{
		PeerId: []byte(n.id), Model: cmp.Or(d.Model, info.Model), Count: uint32(max(info.Devices, 1)),
		VramBytes: cmp.Or(d.VRAMBytes, info.MemoryBytes),
		Int8Tops:  d.Int8TOPS, Bf16Tflops: d.BF16TFLOPS, HashGhps: d.HashGHps, Backend: info.Backend,
	}
	if n.claiming.claim(claim, n.catalog()) {
		return claim, nil // its device reports are its own (an ADVERSARY's forgery)
	}
	if info.Backend == "cuda" {
		// What the device says of itself goes into the signed claim: the
		// proving device only (one node per GPU).
		reports, err := nvml.Reports()
		n.nvmlIndex = -1
		if err == nil {
			if b, ok := n.backend.(interface{ Device() cuda.DeviceInfo }); ok {
				d := b.Device()
				n.nvmlIndex = nvml.Match(reports, d.PCIDomain, d.PCIBus, d.PCIDevice)
			}
		}
		switch {
		case err != nil:
			n.log.Warn("no NVML report for the claim", "err", err)
		case n.nvmlIndex < 0:
			n.log.Warn("no NVML report matches the CUDA device's PCI location", "reports", len(reports))
		default:
			claim.Devices = []*pb.DeviceReport{deviceReport(reports[n.nvmlIndex])}
			if f := challenge.CrossCheckIn(n.catalog(), claim); len(f) > 0 {
				n.log.Warn("this node's claim disagrees with its own NVML report", "findings", f)
			}
		}
	}
	return claim, nil
}

// deviceReport is NVML's report r as the claim signs it.
func deviceReport(r nvml.Report) *pb.DeviceReport {
	return &pb.DeviceReport{
		Name: r.Name, Uuid: r.UUID, MemoryTotalBytes: r.MemoryTotalBytes,
		SmClockMhz: r.SMClockMHz, SmClockMaxMhz: r.SMClockMaxMHz, MemClockMaxMhz: r.MemClockMaxMHz,
		PowerLimitMw: r.PowerLimitMW, TemperatureC: r.TemperatureC, EccEnabled: r.ECCEnabled, EccUncorrected: r.ECCUncorrected,
		PcieGen: r.PCIeGen, PcieWidth: r.PCIeWidth, PciDomain: r.PCIDomain, PciBus: r.PCIBus, PciDevice: r.PCIDevice,
		DriverVersion: r.DriverVersion,
	}
}

// claimRecheck is how often a node checks for new connections to announce
// its claim to.
const claimRecheck = 2 * time.Second

// reannounce publishes the claim again when the node has connected to
// peers it had not announced it to, so a newcomer learns its neighbours'
// claims within seconds instead of at the next epoch.
func (n *Node) reannounce() {
	n.ev.after(claimRecheck, n.reannounce)
	connected := n.host.ConnectedPeers()
	fresh := false
	for _, p := range connected {
		if !n.announcedTo[p] {
			n.announcedTo[p] = true
			fresh = true
		}
	}
	if len(n.announcedTo) > 4*len(connected)+64 { // forget departed peers
		clear(n.announcedTo)
		for _, p := range connected {
			n.announcedTo[p] = true
		}
	}
	if fresh {
		n.publishClaim()
	}
}

func (n *Node) publishClaim() {
	n.gossip.publish(p2p.TopicClaims, n.currentClaim())
}

// livePeers returns the peers with a fresh claim, this node included,
// sorted.
func (n *Node) livePeers(now time.Time) []peer.ID {
	ttl := n.peerTTL()
	out := []peer.ID{n.id}
	for id, e := range n.peers {
		if id != n.id && now.Sub(e.seen) <= ttl {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// FlagUnverifiable marks a claim that cannot be challenged with every
// configured workload that proves what it claims (challenge.Planner.Check:
// int8, and VRAM when it claims memory, must plan within the protocol's
// limits; bf16 may fail alone): it claims more than the network can test,
// so a proof it could not pass would never be asked of it. Such a peer
// gets UnverifiableScore.
const FlagUnverifiable = "unverifiable: no configured workload can be sized for this claim"

// catalog returns the device catalog this node plans from.
func (n *Node) catalog() *gpu.DeviceCatalog { return cmp.Or(n.o.catalog, gpu.DefaultCatalog) }

// plannable returns nil when c can be challenged with the configured
// workloads (challenge.Planner.Check), else why not.
func (n *Node) plannable(c *pb.DeviceClaim) error {
	return n.planner.Check(c, n.workloads)
}

func (n *Node) onClaim(from peer.ID, d decoded, at time.Time) {
	c := d.msg.(*pb.DeviceClaim)
	e := &peerEntry{claim: c, claimCID: d.cid, seen: at, flags: challenge.CrossCheckIn(n.catalog(), c), lastFailed: -1, lastPassed: -1}
	e.lastChallenged = initialLastChallenged(from, n.clock.At(at), n.cfg.Challenge.Rate)
	if old, ok := n.peers[from]; ok {
		e.slowProof, e.lastChallenged, e.voids = old.slowProof, old.lastChallenged, old.voids
		e.lastFailed, e.lastPassed, e.failedWorkload = old.lastFailed, old.lastPassed, old.failedWorkload
		if old.claimCID.Equals(d.cid) {
			e.flags = old.flags // same claim: flags already counted
		} else if slices.Contains(old.flags, FlagVoids) {
			e.flags = append(e.flags, FlagVoids) // earned by its conduct, not its claim
		}
	}
	fresh := n.peers[from] == nil || !n.peers[from].claimCID.Equals(d.cid)
	if fresh {
		if err := n.plannable(c); err != nil {
			e.flags = append(slices.Clip(e.flags), FlagUnverifiable)
			n.metrics.flagged.WithLabelValues("unverifiable").Inc()
			n.log.Info("device claim cannot be challenged: a workload it must prove cannot be planned", "peer", shortID(from), "model", c.GetModel(), "err", err)
		}
	}
	n.app.setUnverifiable(from, slices.Contains(e.flags, FlagUnverifiable))
	if from != n.id {
		// Where to reach it directly (a challenge goes straight to its
		// target) even without a connection or a shared mesh.
		ttl := time.Duration(n.cfg.Challenge.PeerTTLEpochs) * n.clock.Length
		for _, b := range c.GetAddrs() {
			if a, err := multiaddr.NewMultiaddrBytes(b); err == nil {
				n.host.Libp2p().Peerstore().AddAddr(from, a, ttl)
			}
		}
	}
	if fresh && len(e.flags) > 0 && !slices.Equal(e.flags, []string{FlagUnverifiable}) {
		n.metrics.flagged.WithLabelValues("device_report").Inc()
		n.log.Info("device claim inconsistent with its NVML report", "peer", shortID(from), "model", c.GetModel(), "findings", e.flags)
	}
	n.peers[from] = e
}

// checkProofSpeed flags a target whose passing proof of a catalog model
// took longer than the model's anticipated time over nvml.SlowProofFactor:
// a device that passes on the deadline's slack but is weaker than it says.
func (n *Node) checkProofSpeed(t *tracked, latency time.Duration) {
	e, ok := n.peers[t.target]
	if !ok {
		return
	}
	if _, catalog := n.planner.Lookup(e.claim.GetModel()); !catalog {
		return
	}
	pl, err := n.planner.Plan(e.claim, t.ch.GetWorkload())
	if err != nil || pl.Anticipated <= 0 {
		return
	}
	speed := pl.Anticipated.Seconds() / latency.Seconds()
	if speed >= nvml.SlowProofFactor {
		return
	}
	flag := fmt.Sprintf("%v proof ran at %.0f%% of the speed a %s should reach", t.ch.GetWorkload(), 100*speed, e.claim.GetModel())
	if c := t.com; c != nil && nvml.Throttled(c.GetSmClockMhz(), c.GetSmClockMaxMhz()) {
		// A throttled device is slow for a reason its model does not
		// explain: say so rather than call it weaker than it claims.
		flag = fmt.Sprintf("%v proof ran at %.0f%% of a %s's speed while throttled (SM clock %d of %d MHz, %d °C)",
			t.ch.GetWorkload(), 100*speed, e.claim.GetModel(), c.GetSmClockMhz(), c.GetSmClockMaxMhz(), c.GetTemperatureC())
	}
	if e.slowProof == "" {
		n.metrics.flagged.WithLabelValues("slow_proof").Inc()
		n.log.Info("passing proof far below the claimed model's speed", "target", shortID(t.target), "flag", flag)
	}
	e.slowProof = flag
}

// claimOf returns p's latest claim known here (this node's own for
// itself), and whether there is one.
func (n *Node) claimOf(p peer.ID) (*pb.DeviceClaim, bool) {
	if p == n.id {
		return n.claim, true
	}
	e, ok := n.peers[p]
	if !ok {
		return nil, false
	}
	return e.claim, true
}
