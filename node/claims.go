package node

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/cuda"
	"github.com/poai-network/poai/gpu/nvml"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
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

// buildClaim returns the device claim of self proving on backend,
// measuring the backend for every figure d leaves at 0 (unless measured
// is given; calibrate, with its record in the file calibration,
// re-measured when recalibrate is set), as claiming states it against cat. The second result is
// NVML's index of the proving device (-1: none), matched by PCI location.
func buildClaim(ctx context.Context, self peer.ID, backend gpu.Backend, d DeviceConfig, ch ChallengeConfig, measured *gpu.Throughput,
	calibration string, recalibrate bool, claiming claimerRole, cat *gpu.DeviceCatalog, log *slog.Logger) (*pb.DeviceClaim, int, error) {
	info := backend.Info()
	var llmTOPS float64
	if d.Int8TOPS == 0 || d.BF16TFLOPS == 0 || d.HashGHps == 0 {
		m := measured
		if m == nil {
			t, err := calibrate(ctx, calibration, backend, ch, recalibrate, log)
			if err != nil {
				return nil, -1, err
			}
			m = &t
		}
		d.Int8TOPS = cmp.Or(d.Int8TOPS, m.Int8TOPS)
		d.BF16TFLOPS = cmp.Or(d.BF16TFLOPS, m.BF16TFLOPS)
		d.HashGHps = cmp.Or(d.HashGHps, m.HashGHps)
		llmTOPS = m.LLMInt8TOPS
	}
	claim := &pb.DeviceClaim{
		PeerId: []byte(self), Model: cmp.Or(d.Model, info.Model), Count: uint32(max(info.Devices, 1)),
		VramBytes: cmp.Or(d.VRAMBytes, info.MemoryBytes),
		Int8Tops:  d.Int8TOPS, Bf16Tflops: d.BF16TFLOPS, HashGhps: d.HashGHps, Backend: info.Backend,
		LlmInt8Tops: llmTOPS,
	}
	if claiming.claim(claim, cat) {
		return claim, -1, nil // its device reports are its own (an ADVERSARY's forgery)
	}
	nvmlIndex := -1
	if info.Backend == "cuda" {
		// What the device says of itself goes into the signed claim: the
		// proving device only (one node per GPU).
		reports, err := nvml.Reports()
		if err == nil {
			if b, ok := backend.(interface{ Device() cuda.DeviceInfo }); ok {
				d := b.Device()
				nvmlIndex = nvml.Match(reports, d.PCIDomain, d.PCIBus, d.PCIDevice)
			}
		}
		switch {
		case err != nil:
			log.Warn("no NVML report for the claim", "err", err)
		case nvmlIndex < 0:
			log.Warn("no NVML report matches the CUDA device's PCI location", "reports", len(reports))
		default:
			claim.Devices = []*pb.DeviceReport{deviceReport(reports[nvmlIndex])}
			if f := challenge.CrossCheckIn(cat, claim); len(f) > 0 {
				log.Warn("this node's claim disagrees with its own NVML report", "findings", f)
			}
		}
	}
	return claim, nvmlIndex, nil
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

// announcer publishes this node's own claim: every epoch (onEpoch), and
// again whenever the node has connected to peers it had not announced it
// to. reannounce runs on the loop goroutine; current and encoded are safe
// from any (the claim is set before the host starts and never changes).
type announcer struct {
	claim  *pb.DeviceClaim
	host   *p2p.Host
	gossip *gossip
	ev     *events
	log    *slog.Logger
	// announcedTo are the peers connected when the claim was last
	// announced (loop goroutine only).
	announcedTo map[peer.ID]bool
}

// reannounce publishes the claim again when the node has connected to
// peers it had not announced it to, so a newcomer learns its neighbours'
// claims within seconds instead of at the next epoch.
func (a *announcer) reannounce() {
	a.ev.after(claimRecheck, a.reannounce)
	connected := a.host.ConnectedPeers()
	fresh := false
	for _, p := range connected {
		if !a.announcedTo[p] {
			a.announcedTo[p] = true
			fresh = true
		}
	}
	if len(a.announcedTo) > 4*len(connected)+64 { // forget departed peers
		clear(a.announcedTo)
		for _, p := range connected {
			a.announcedTo[p] = true
		}
	}
	if fresh {
		a.publish()
	}
}

// publish publishes the claim as current returns it.
func (a *announcer) publish() {
	a.gossip.publish(p2p.TopicClaims, a.current())
}

// current returns this node's claim as it publishes it now: fresh
// timestamp, current listen addresses.
func (a *announcer) current() *pb.DeviceClaim {
	c := proto.Clone(a.claim).(*pb.DeviceClaim)
	c.IssuedUnixMs = time.Now().UnixMilli()
	for _, addr := range a.host.Libp2p().Addrs() {
		if len(c.Addrs) < challenge.MaxClaimAddrs {
			c.Addrs = append(c.Addrs, addr.Bytes())
		}
	}
	return c
}

// encoded is current encoded, as p2p.ClaimProtocol hands it out. It runs
// on the stream's goroutine.
func (a *announcer) encoded() []byte {
	b, err := challenge.Marshal(a.current())
	if err != nil {
		a.log.Error("encode claim", "err", err)
		return nil
	}
	return b
}

// claimBook is what this node knows of the peers' device claims: each
// peer's latest claim, when it was heard, and what was found wrong in it
// and in its proofs (peerEntry); and this node's own claim. It is owned by
// the loop goroutine.
type claimBook struct {
	self peer.ID
	own  *pb.DeviceClaim // set in Start
	// peers holds the claims heard, by author.
	peers map[peer.ID]*peerEntry
	// ttl is how long a claim keeps its author live (peerTTL).
	ttl time.Duration
	// What a claim is checked against: the epoch clock, the catalog,
	// the planner and the configured workloads; rate is [challenge] rate
	// (challenge.InitialLastChallenged).
	clock     challenge.EpochClock
	cat       *gpu.DeviceCatalog
	planner   challenge.Planner
	workloads []pb.Workload
	rate      float64
	// addrTTL is how long a claim's addresses stay in the peerstore.
	addrTTL time.Duration
	// peerstore learns each claim's addresses (nil before Start).
	peerstore func() peerstore.Peerstore
	app       *appScores
	metrics   *metrics
	log       *slog.Logger
	// speed tests each peer's passed proofs against its class's peers
	// (scoring.SpeedMonitor): a device slower than its claim, inside every
	// deadline's slack.
	speed *scoring.SpeedMonitor
}

// peerTTL is how long a claim keeps its author live (livePeers). Claims
// come at an offset within the first tenth of each epoch (challenge.ClaimOffset),
// so two in a row can be that much more than an epoch apart.
func peerTTL(epochs int, epoch time.Duration) time.Duration {
	return time.Duration(epochs)*epoch + epoch/challenge.ClaimSpread
}

// live reports whether p is among livePeers(now).
func (b *claimBook) live(p peer.ID, now time.Time) bool {
	if p == b.self {
		return true
	}
	e, ok := b.peers[p]
	return ok && now.Sub(e.seen) <= b.ttl
}

// livePeers returns the peers with a fresh claim, this node included,
// sorted.
func (b *claimBook) livePeers(now time.Time) []peer.ID {
	out := []peer.ID{b.self}
	for id, e := range b.peers {
		if id != b.self && now.Sub(e.seen) <= b.ttl {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// claimOf returns p's latest claim known here (this node's own for
// itself), and whether there is one.
func (b *claimBook) claimOf(p peer.ID) (*pb.DeviceClaim, bool) {
	if p == b.self {
		return b.own, true
	}
	e, ok := b.peers[p]
	if !ok {
		return nil, false
	}
	return e.claim, true
}

// FlagUnverifiable marks a claim that cannot be challenged with every
// configured workload that proves what it claims (challenge.Planner.Check:
// int8, and VRAM when it claims memory, must plan within the protocol's
// limits; bf16 may fail alone): it claims more than the network can test,
// so a proof it could not pass would never be asked of it. Such a peer
// gets UnverifiableScore.
const FlagUnverifiable = "unverifiable: no configured workload can be sized for this claim"

// onClaim records claim d of from, heard at: it checks the claim against
// its device reports and the catalog (challenge.CrossCheckIn) and whether
// it can be challenged at all (FlagUnverifiable), keeps what the peer's
// conduct earned under its previous claim, and learns its addresses.
func (b *claimBook) onClaim(from peer.ID, d decoded, at time.Time) {
	c := d.msg.(*pb.DeviceClaim)
	e := &peerEntry{claim: c, claimCID: d.cid, seen: at, flags: challenge.CrossCheckIn(b.cat, c), lastFailed: -1, lastPassed: -1}
	e.lastChallenged = challenge.InitialLastChallenged(from, b.clock.At(at), b.rate)
	if old, ok := b.peers[from]; ok {
		e.slowProof, e.lastChallenged, e.voids = old.slowProof, old.lastChallenged, old.voids
		e.lastFailed, e.lastPassed, e.failedWorkload = old.lastFailed, old.lastPassed, old.failedWorkload
		if old.claimCID.Equals(d.cid) {
			e.flags = old.flags // same claim: flags already counted
		} else if slices.Contains(old.flags, FlagVoids) {
			e.flags = append(e.flags, FlagVoids) // earned by its conduct, not its claim
		}
	}
	fresh := b.peers[from] == nil || !b.peers[from].claimCID.Equals(d.cid)
	if fresh {
		if err := b.planner.Check(c, b.workloads); err != nil {
			e.flags = append(slices.Clip(e.flags), FlagUnverifiable)
			b.metrics.flagged.WithLabelValues("unverifiable").Inc()
			b.log.Info("device claim cannot be challenged: a workload it must prove cannot be planned", "peer", shortID(from), "model", c.GetModel(), "err", err)
		}
	}
	b.app.setUnverifiable(from, slices.Contains(e.flags, FlagUnverifiable))
	if from != b.self && b.peerstore != nil {
		// Where to reach it directly (a challenge goes straight to its
		// target) even without a connection or a shared mesh.
		for _, raw := range c.GetAddrs() {
			if a, err := multiaddr.NewMultiaddrBytes(raw); err == nil {
				b.peerstore().AddAddr(from, a, b.addrTTL)
			}
		}
	}
	if fresh && len(e.flags) > 0 && !slices.Equal(e.flags, []string{FlagUnverifiable}) {
		b.metrics.flagged.WithLabelValues("device_report").Inc()
		b.log.Info("device claim inconsistent with its NVML report", "peer", shortID(from), "model", c.GetModel(), "findings", e.flags)
	}
	b.peers[from] = e
}

// checkProofSpeed weighs a passing proof's speed, anticipated over
// latency: the speed test (scoring.SpeedMonitor) against the target's
// class, whose state it returns (tested: a bar to hold it to); and, for a catalog
// model, a flag when the proof took longer than the anticipated time over
// nvml.SlowProofFactor. Both catch a device that passes on the deadline's
// slack but is weaker than it says. Loop goroutine only.
func (b *claimBook) checkProofSpeed(t *tracked, latency time.Duration) (st scoring.SpeedState, tested bool) {
	e, ok := b.peers[t.target]
	if !ok || latency <= 0 {
		return st, false
	}
	pl, err := b.planner.Plan(e.claim, t.ch.GetWorkload())
	if err != nil || pl.Anticipated <= 0 {
		return st, false
	}
	speed := pl.Anticipated.Seconds() / latency.Seconds()
	spec, catalog := b.planner.Lookup(e.claim.GetModel())
	if b.speed != nil {
		// The class is the catalog's name of the model (else the name
		// normalized): spelling a model another way must not put a
		// device in a class of its own, where nobody holds it to a bar.
		model := gpu.NormalizeModel(e.claim.GetModel())
		if catalog {
			model = spec.Model
		}
		class := model + "/" + workloadName(t.ch.GetWorkload())
		before, _ := b.speed.State(t.target.String())
		st, tested = b.speed.Observe(t.target.String(), class, speed)
		switch {
		case st.Flagged && !before.Flagged:
			b.metrics.flagged.WithLabelValues("underpowered").Inc()
			b.log.Info("device slower than its peers of the same claim", "target", shortID(t.target), "class", class,
				"relative_speed", st.Relative, "samples", st.Samples)
		case before.Flagged && !st.Flagged:
			b.log.Info("speed flag lifted", "target", shortID(t.target), "class", class, "relative_speed", st.Relative, "tested", tested)
		}
	}
	if !catalog {
		return st, tested
	}
	if speed >= nvml.SlowProofFactor {
		return st, tested
	}
	flag := fmt.Sprintf("%v proof ran at %.0f%% of the speed a %s should reach", t.ch.GetWorkload(), 100*speed, e.claim.GetModel())
	if c := t.com; c != nil && nvml.Throttled(c.GetSmClockMhz(), c.GetSmClockMaxMhz()) {
		// A throttled device is slow for a reason its model does not
		// explain: say so rather than call it weaker than it claims.
		flag = fmt.Sprintf("%v proof ran at %.0f%% of a %s's speed while throttled (SM clock %d of %d MHz, %d °C)",
			t.ch.GetWorkload(), 100*speed, e.claim.GetModel(), c.GetSmClockMhz(), c.GetSmClockMaxMhz(), c.GetTemperatureC())
	}
	if e.slowProof == "" {
		b.metrics.flagged.WithLabelValues("slow_proof").Inc()
		b.log.Info("passing proof far below the claimed model's speed", "target", shortID(t.target), "flag", flag)
	}
	e.slowProof = flag
	return st, tested
}

// speedFlag is the flag of a peer the speed test flagged, or "".
func (b *claimBook) speedFlag(id peer.ID) string {
	if b.speed == nil {
		return ""
	}
	st, ok := b.speed.State(id.String())
	if !ok || !st.Flagged {
		return ""
	}
	p := scoring.DefaultSpeedParams()
	return fmt.Sprintf("%s: proofs at about %.0f%% of the speed of its peers with the same claim (sequential test, %d passed proofs; a device at %.0f%% or faster is flagged with probability under %.0e over %d)",
		FlagUnderpowered, 100*st.Relative, st.Samples, 100*p.Tolerated, p.Alpha, p.Horizon)
}

// FlagUnderpowered begins the flag of a peer whose proofs the speed test
// (scoring.SpeedMonitor) found slower than its class's peers'.
const FlagUnderpowered = "underpowered"
