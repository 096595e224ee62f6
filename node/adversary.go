package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// Role is how a node behaves as a prover. Every role but RoleHonest is an
// ADVERSARY, built into the binary only so that `poai devnet` and the
// integration tests can show that poai catches it. An operator never sets
// one.
type Role string

const (
	// RoleHonest proves every challenge on its real backend.
	RoleHonest Role = "honest"
	// RoleSlow (adversary) claims SlowClaimFactor times the throughput and
	// memory it has, so its workloads are sized for a faster, bigger device
	// and it misses the deadlines.
	RoleSlow Role = "slow"
	// RoleLazy (adversary) computes only LazyFraction of the rows and
	// fills the rest with noise, committing to all of them.
	RoleLazy Role = "lazy"
	// RoleReplay (adversary) answers its first challenge honestly and every
	// later one with that first result, relabelled for the new challenge.
	RoleReplay Role = "replay"
	// RoleRelay (adversary) owns no device: it forwards each challenge to
	// an accomplice peer, whose device proves it between its own
	// challenges, and publishes the answer as its own.
	RoleRelay Role = "relay"
	// RoleForgedNVML (adversary) claims a catalog GPU (an H100) with an
	// NVML report forged to match, and proves on a CPU.
	RoleForgedNVML Role = "forged-nvml"
	// RoleLazyVerifier (adversary) proves honestly but, as a verifier,
	// attests PASS without checking anything.
	RoleLazyVerifier Role = "lazy-verifier"
	// RoleColluder (adversary) belongs to a clique: as a verifier it
	// attests PASS for clique members and WRONG_ANSWER for everyone else,
	// unchecked; as a prover it is lazy, counting on the clique's passes.
	RoleColluder Role = "colluders"
	// RoleSybil (adversary) is one of many fresh identities run by one
	// operator: lazy as a prover, vouching for its fellow identities as a
	// verifier, with no reputation to spend.
	RoleSybil Role = "sybil"
	// RoleOnOff (adversary) proves honestly for OnOffHonestEpochs epochs
	// to build a reputation, then turns lazy.
	RoleOnOff Role = "onoff"
	// RoleLateJunk (adversary) claims LateJunkClaimFactor times the
	// throughput it has, lets each first challenge go unanswered, proves
	// its retry late and, just before that answer, posts a junk commitment
	// (a random root, no work) to the missed challenge, so that the time
	// "spent" on it would excuse the retry's lateness (lateJunkProver).
	RoleLateJunk Role = "late-junk"
	// RoleEquivocator (adversary) computes EquivocatorFraction of the
	// rows, sends a commitment to the challenger alone, and once the
	// secret is revealed grinds a second root whose sampled rows are all
	// computed, for the verifiers (equivocatorProver).
	RoleEquivocator Role = "equivocator"
	// RoleVoider (adversary) does no work: it sends a junk commitment to
	// the verifiers alone, never to the challenger, and never opens, so
	// that no secret is revealed and the challenge is void (voiderProver).
	RoleVoider Role = "voider"
	// RoleSibling (adversary) has an emulated SiblingHas (a devnet A100
	// 40GB: the same compute, half the memory) and claims its bigger
	// sibling, SiblingClaims, with that model's memory: its VRAM proofs,
	// sized for memory it lacks, recompute blocks and come late.
	RoleSibling Role = "sibling"
	// RoleInflate (adversary) has one emulated InflateModel and claims
	// InflateCount of them: it is held to every device it claims
	// (challenge.Planner.RatesFor), so its proofs are sized for
	// InflateCount devices and come late, and challenge.CrossCheck flags the
	// count.
	RoleInflate Role = "inflate"
	// RoleVRAMDodger (adversary) has an emulated DodgerModel holding
	// DodgerHold of its memory, and claims the model with its full memory
	// and DodgerUnderclaim times less than its hash rate, hoping for a
	// lax VRAM deadline: the catalog's hash rate is a floor, so its
	// deadline is the model's, and it recomputes the blocks it lacks.
	RoleVRAMDodger Role = "vram-dodger"
	// RoleSybilFlood (adversary) is one of many identities that only
	// announce a device claim, with no device behind it: it never proves,
	// never issues a challenge and never attests, and only takes the
	// challenger and verifier slots the schedule would give it
	// (sybilFlood).
	RoleSybilFlood Role = "sybil-flood"
	// RoleColludingChallenger (adversary) comes in pairs: a challenger
	// and its target. The challenger proves honestly but leaks the
	// opening secret of every challenge of its target to the target
	// before publishing it (a side channel, Leak); the target computes
	// ColludingFraction of the rows of every product and, challenged by
	// its challenger, grinds its root against the leaked secret until the
	// sampled rows avoid the made-up ones (colludingCompute). The leak
	// itself is invisible: the challenger is otherwise honest.
	RoleColludingChallenger Role = "colluding-challenger"
	// RoleSharedDevice (adversary) is one of two identities run on one
	// device, both honest in their arithmetic: the operator is paid twice
	// for one device's capacity. Challenged at the same instant (waves),
	// the device answers one of them at least a proof late.
	RoleSharedDevice Role = "shared-device"
	// RoleEpochSkew (adversary) proves honestly, but the moment it gets a
	// challenge it signs a junk commitment naming the next epoch and
	// hands it to gossip, before the challenge has
	// reached everyone: a peer that forwards it before it heard the
	// challenge used to be charged an invalid message (P4) by every peer
	// that heard the challenge first, so honest forwarders paid for the
	// author's message (epochSkewProver). Such a message is now ignored.
	RoleEpochSkew Role = "epoch-skew"
)

// Adversary parameters.
const (
	SlowClaimFactor   = 8
	LazyFraction      = 0.5
	OnOffHonestEpochs = 4
	// LateJunkClaimFactor is how much more than it has RoleLateJunk
	// claims: enough that its honest answers miss every devnet deadline
	// (slack 3 and 0.5 s allowance over a 0.4 s target pass a device at
	// 1/4.25 of its claim), so that only the junk could make them pass.
	LateJunkClaimFactor = 6
	// EquivocatorFraction is the share of rows RoleEquivocator computes:
	// without grinding it would pass 0.95^66 ≈ 3.4 % of challenges.
	EquivocatorFraction = 0.95
	// ColludingFraction is the share of rows RoleColludingChallenger
	// computes when its partner challenges it: without grinding it would
	// pass 0.9^66 ≈ 0.1 % of those challenges; grinding against the
	// leaked secret alone takes about 1,000 tries.
	ColludingFraction = 0.9
	// ForgedModel is the catalog model RoleForgedNVML claims.
	ForgedModel = "NVIDIA H100 80GB HBM3"
	// SiblingHas and SiblingClaims are the catalog models whose emulated
	// twins (gpu.DevnetPrefix) RoleSibling has and claims.
	SiblingHas, SiblingClaims = "A100 40GB SXM", "A100 80GB SXM"
	// InflateModel is the catalog model whose emulated twin RoleInflate
	// has one of, and InflateCount how many it claims.
	InflateModel, InflateCount = "A100 80GB SXM", 2
	// DodgerModel is the catalog model whose emulated twin RoleVRAMDodger
	// has and claims; DodgerHold is the share of its memory the device
	// holds, and DodgerUnderclaim how many times less than the model's
	// hash rate it claims.
	DodgerModel      = "A100 80GB SXM"
	DodgerHold       = 0.5
	DodgerUnderclaim = 16
)

// Roles lists the roles in the order devnet reports them.
var Roles = []Role{RoleHonest, RoleSlow, RoleLazy, RoleReplay, RoleRelay, RoleForgedNVML, RoleLazyVerifier, RoleColluder, RoleSybil, RoleOnOff,
	RoleLateJunk, RoleEquivocator, RoleVoider, RoleSibling, RoleInflate, RoleVRAMDodger,
	RoleSybilFlood, RoleColludingChallenger, RoleSharedDevice, RoleEpochSkew}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == strings.ToLower(strings.TrimSpace(s)) {
			return r, nil
		}
	}
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return "", fmt.Errorf("unknown role %q (known: %s)", s, strings.Join(names, ", "))
}

// proverFor returns the prover of n's role: the honest one, or an
// adversary's. Adversaries that only change the arithmetic (lazy, replay,
// relay, on-off, colluders, sybils) keep the honest delivery with their
// own compute; the others are provers of their own. Every adversary stops
// at its deadline: on a devnet every node shares the machine, and work an
// adversary does past its deadline only slows honest neighbours.
func proverFor(n *Node) proverRole {
	h := newHonestProver(n)
	switch n.role {
	case RoleHonest, "", RoleLazyVerifier, RoleForgedNVML, RoleSlow, RoleSibling, RoleInflate, RoleVRAMDodger, RoleSharedDevice:
		if n.role.Adversary() {
			return cappedProver{h}
		}
		return h
	case RoleLazy, RoleColluder, RoleSybil:
		h.compute = n.lazyProve
	case RoleOnOff:
		honest := h.compute
		h.compute = func(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
			if n.startEpoch != nil && ch.GetEpoch() >= *n.startEpoch+OnOffHonestEpochs {
				return n.lazyProve(ctx, ch, chCID)
			}
			return honest(ctx, ch, chCID)
		}
	case RoleRelay:
		h.compute = n.relayProve
	case RoleReplay:
		h.compute = n.replayProve
	case RoleLateJunk:
		return &lateJunkProver{honestProver: h}
	case RoleEquivocator:
		return &equivocatorProver{honestProver: h}
	case RoleVoider:
		return voiderProver{n: n}
	case RoleEpochSkew:
		return cappedProver{epochSkewProver{h}}
	case RoleColludingChallenger:
		h.compute = n.colludingCompute(h.compute)
	}
	return cappedProver{h}
}

// claimerFor returns the claimer of role r: honestClaimer, or the
// ADVERSARY's lie.
func claimerFor(r Role) claimerRole {
	switch {
	case r == RoleForgedNVML:
		return forgedClaimer{}
	case r.ClaimFactor() > 1:
		return overClaimer{factor: r.ClaimFactor()}
	case r == RoleSibling || r == RoleInflate || r == RoleVRAMDodger:
		return catalogLiar{role: r}
	}
	return honestClaimer{}
}

// forgedClaimer (adversary, RoleForgedNVML) claims ForgedModel on CUDA,
// with an H200's measured hash rate (a CPU does 10^-3 of it), the model's
// memory and a forged NVML report to match.
type forgedClaimer struct{}

func (forgedClaimer) claim(c *pb.DeviceClaim, _ *gpu.DeviceCatalog) bool {
	spec, _ := gpu.LookupDevice(ForgedModel)
	c.Model, c.Backend = ForgedModel, "cuda"
	c.HashGhps = 13.3
	c.VramBytes = spec.VRAMBytes
	c.Devices = []*pb.DeviceReport{forgedReport()}
	return true
}

// overClaimer (adversary: RoleSlow, RoleLateJunk) claims a device factor
// times faster and bigger than it has.
type overClaimer struct{ factor float64 }

func (o overClaimer) claim(c *pb.DeviceClaim, _ *gpu.DeviceCatalog) bool {
	c.Int8Tops *= o.factor
	c.Bf16Tflops *= o.factor
	c.HashGhps *= o.factor
	c.VramBytes *= uint64(o.factor)
	return false
}

// catalogLiar (adversary: RoleSibling, RoleInflate, RoleVRAMDodger) lies
// about its model, count or memory (claimFor).
type catalogLiar struct{ role Role }

func (l catalogLiar) claim(c *pb.DeviceClaim, cat *gpu.DeviceCatalog) bool {
	claimFor(l.role, c, cat)
	return false
}

// ClaimFactor is how many times the device it has a role claims: more
// than 1 for the adversaries that over-claim (RoleSlow, RoleLateJunk).
func (r Role) ClaimFactor() float64 {
	switch r {
	case RoleSlow:
		return SlowClaimFactor
	case RoleLateJunk:
		return LateJunkClaimFactor
	}
	return 1
}

// EmulatedDevice (adversary wiring, devnet only) returns the catalog
// model whose emulated twin a role's device is, and the share of that
// model's memory the device holds; ok is false for roles without an
// emulated device of their own.
func (r Role) EmulatedDevice() (model string, hold float64, ok bool) {
	switch r {
	case RoleSibling:
		return SiblingHas, 1, true
	case RoleInflate:
		return InflateModel, 1, true
	case RoleVRAMDodger:
		return DodgerModel, DodgerHold, true
	}
	return "", 0, false
}

// claimFor (adversary) rewrites the claim c of a role whose lie is in
// the claim rather than in its arithmetic, against the models of cat:
// RoleSibling names the bigger sibling with its memory, RoleInflate
// claims InflateCount devices, RoleVRAMDodger claims its model's memory
// and a DodgerUnderclaim-th of its hash rate. Other roles' claims are
// left alone.
func claimFor(r Role, c *pb.DeviceClaim, cat *gpu.DeviceCatalog) {
	switch r {
	case RoleSibling:
		c.Model = gpu.DevnetPrefix + SiblingClaims
		if spec, ok := cat.Lookup(c.Model); ok {
			c.VramBytes = spec.VRAMBytes
		}
	case RoleInflate:
		c.Count = InflateCount
	case RoleVRAMDodger:
		if spec, ok := cat.Lookup(c.GetModel()); ok {
			c.VramBytes = spec.VRAMBytes
		}
		c.HashGhps /= DodgerUnderclaim
	}
}

// cappedProver (adversary) is a prover that stops at the deadline.
type cappedProver struct{ proverRole }

func (p cappedProver) limit(d time.Duration) time.Duration { return d }

// verdictRole is whether a node checks the answers it verifies. The node
// consumes it through this interface only (tryVerify, finalize):
// honestJudge checks; an ADVERSARY's attests without checking.
type verdictRole interface {
	// unchecked returns the verdict this node attests on target without
	// checking anything; ok is false for a node that checks.
	unchecked(target peer.ID) (v pb.Verdict, ok bool)
}

// honestJudge checks every answer it verifies.
type honestJudge struct{}

func (honestJudge) unchecked(peer.ID) (pb.Verdict, bool) { return 0, false }

// verdictRoleFor returns n's judge: honestJudge, or an adversary's.
func verdictRoleFor(n *Node) verdictRole {
	switch n.role {
	case RoleLazyVerifier, RoleSybil:
		return passAll{}
	case RoleColluder:
		return cliqueJudge{clique: n.o.clique}
	}
	return honestJudge{}
}

// passAll (adversary: RoleLazyVerifier, and sybils, who want to pass
// unnoticed) attests PASS for everyone without checking.
type passAll struct{}

func (passAll) unchecked(peer.ID) (pb.Verdict, bool) { return pb.Verdict_VERDICT_PASS, true }

// cliqueJudge (adversary: RoleColluder) attests without checking: PASS for
// a member of its clique, WRONG_ANSWER for anyone else.
type cliqueJudge struct{ clique []peer.ID }

func (j cliqueJudge) unchecked(target peer.ID) (pb.Verdict, bool) {
	if slices.Contains(j.clique, target) {
		return pb.Verdict_VERDICT_PASS, true
	}
	return pb.Verdict_VERDICT_WRONG_ANSWER, true
}

// routingRole shapes the application scores a node's gossipsub router
// routes by (setAppScores consumes it): honestRouting uses the trust
// round's; an ADVERSARY's may not.
type routingRole interface {
	appScores(v scoring.TrustVector) scoring.TrustVector
}

// honestRouting routes by the trust round's scores.
type honestRouting struct{}

func (honestRouting) appScores(v scoring.TrustVector) scoring.TrustVector { return v }

// routingFor returns the routing of role r.
func routingFor(r Role) routingRole {
	if r == RoleColluder {
		return colluderRouting{}
	}
	return honestRouting{}
}

// colluderRouting (adversary, RoleColluder) routes as a node without
// application scores. A clique member's book holds its own false
// WRONG_ANSWER verdicts against everyone outside the clique, as a
// pre-trusted peer's. Routing on it, its router graylisted the honest
// peers and cut itself off, its claims heard by none of them and never
// challenged (a 1,000-peer sim left one colluder so). A cheater wants the
// opposite, to stay in the honest mesh.
type colluderRouting struct{}

func (colluderRouting) appScores(v scoring.TrustVector) scoring.TrustVector {
	v.Peers = nil
	return v
}

// forgedReport (adversary) is an NVML report that matches ForgedModel.
func forgedReport() *pb.DeviceReport {
	spec, _ := gpu.LookupDevice(ForgedModel)
	return &pb.DeviceReport{Name: ForgedModel, Uuid: "GPU-00000000-forged", MemoryTotalBytes: spec.VRAMBytes + spec.VRAMBytes/20,
		SmClockMaxMhz: 1980, SmClockMhz: 1980, PowerLimitMw: 700000, EccEnabled: true, PcieGen: 5, PcieWidth: 16, DriverVersion: "580.00"}
}

// RelayRoundTrip is the time the relay's forwarded challenge takes to
// reach its accomplice's device: a one-way trip between two hosts and the
// queueing on the accomplice's side (the answer's way back is the
// commitment's own publication). At 20 ms, on a 20-peer devnet, gossip
// delivered the accomplice's own challenge of a wave later than the
// relay's forward in 3 of 7 waves, so the accomplice missed instead of
// the relay; its operator, who serves its own challenge first, would
// not allow that.
const RelayRoundTrip = 100 * time.Millisecond

// relayProve (adversary) forwards the challenge to its accomplice, whose
// device proves it (the accomplice's backend, shared and serialized with
// the accomplice's own work), and answers as if it had. The forwarded
// challenge reaches the device RelayRoundTrip after the relay got it, so
// the accomplice's own challenge of the same instant runs first.
func (n *Node) relayProve(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
	if n.o.accomplice == nil {
		return nil, fmt.Errorf("relay without an accomplice")
	}
	select {
	case <-time.After(RelayRoundTrip):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return challenge.Run(ctx, n.o.accomplice, ch, chCID, n.id)
}

// Adversary reports whether the role cheats.
func (r Role) Adversary() bool { return r != RoleHonest && r != "" }

// lazyProve (adversary) computes rows [0, LazyFraction·n) honestly, fills
// the others with noise, and commits to the lot.
func (n *Node) lazyProve(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
	if ch.GetWorkload() == pb.Workload_WORKLOAD_VRAM {
		return n.lazyVRAM(ch, chCID)
	}
	e, err := partialProduct(ctx, n.cpu, ch, LazyFraction)
	if err != nil {
		return nil, err
	}
	return challenge.Commit(chCID, n.id, e.leaves, func(i int) []byte { return e.rows[i] })
}

// lazyVRAM (adversary) fills the memory but runs the read chains of only
// the first LazyFraction of the lanes, making up the other lanes' outputs.
func (n *Node) lazyVRAM(ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
	p, seed := challenge.VRAMParamsOf(ch), challenge.Seed(ch)
	mem := make([][32]byte, p.Lanes*p.Blocks)
	for g := range mem {
		mem[g] = gpu.VRAMBlock(seed, uint64(g), p.Rounds)
	}
	outputs := make([][32]byte, p.Lanes)
	leaves := make([][32]byte, p.Lanes)
	for l := range p.Lanes {
		if l < int(float64(p.Lanes)*LazyFraction) {
			outputs[l] = gpu.VRAMLane(seed, l, p, func(g uint64) [32]byte { return mem[g] })
		} else {
			outputs[l] = sha256.Sum256([]byte(fmt.Sprint("made up ", l)))
		}
		leaves[l] = merkle.LeafHash(outputs[l][:])
	}
	return challenge.Commit(chCID, n.id, leaves, func(i int) []byte { return outputs[i][:] })
}

// replayAnswer is a result kept by the replay adversary.
type replayAnswer struct {
	leaves [][32]byte
	value  func(i int) []byte
}

// replayProve (adversary) answers with the result of its first challenge
// of the same workload.
func (n *Node) replayProve(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
	if n.replay == nil {
		n.replay = map[pb.Workload]replayAnswer{}
	}
	old, ok := n.replay[ch.GetWorkload()]
	if !ok {
		seed, shape := challenge.Seed(ch), challenge.ShapeOf(ch)
		switch ch.GetWorkload() {
		case pb.Workload_WORKLOAD_VRAM:
			outputs, leaves, err := n.backend.VRAM(ctx, seed, challenge.VRAMParamsOf(ch))
			if err != nil {
				return nil, err
			}
			old = replayAnswer{leaves, func(i int) []byte { return outputs[i][:] }}
		case pb.Workload_WORKLOAD_GEMM_BF16:
			c, leaves, err := n.backend.MatMulBF16(ctx, seed, shape)
			if err != nil {
				return nil, err
			}
			old = replayAnswer{leaves, func(i int) []byte { return gpu.EncodeFloat32Row(c.Row(i)) }}
		default:
			c, leaves, err := n.backend.MatMulInt8(ctx, seed, shape)
			if err != nil {
				return nil, err
			}
			old = replayAnswer{leaves, func(i int) []byte { return gpu.EncodeInt32Row(c.Row(i)) }}
		}
		n.replay[ch.GetWorkload()] = old
	}
	return challenge.Commit(chCID, n.id, old.leaves, old.value)
}

// lateJunkProver (adversary, RoleLateJunk) claims more than it has and
// hides its lateness behind junk. A first try goes unanswered; its retry
// (same challenger, same verifiers) is proved on the real backend, late,
// and just before that answer the prover posts a signed junk commitment
// (a random root over no work) to the missed challenge. Before busyOverlap
// asked for a verified answer, the verifiers counted the time up to that
// junk commitment as the prover "still busy" with the earlier challenge
// and timed the retry at near zero; the retry passed, and a passing retry
// forgives the miss.
type lateJunkProver struct{ *honestProver }

// limit: long enough for its retry (LateJunkClaimFactor anticipated
// times, against a deadline of about 4.25) to finish before the verifiers
// finalize, 2 deadlines and a second after the retry arrived.
func (p *lateJunkProver) limit(d time.Duration) time.Duration { return 2 * d }

func (p *lateJunkProver) commit(ctx context.Context, job proveJob) (*challenge.Committed, error) {
	n := p.n
	missed, err := cid.Cast(job.ch.GetRetryOf())
	if err != nil {
		return nil, nil // a first try: wait for its retry
	}
	committed, err := p.compute(ctx, job.ch, job.cid)
	if err != nil {
		return nil, err
	}
	junk, err := n.junkCommitment(job.ch, missed)
	if err != nil {
		return nil, err
	}
	n.publishTo(p2p.TopicCommitments, junk, deadlineOf(job.ch), job.judges...)
	time.Sleep(20 * time.Millisecond) // the junk first, then the answer
	n.listShares(ctx, job, committed)
	if err := committed.SetEpoch(job.ch.GetEpoch()); err != nil {
		return nil, err
	}
	if err := committed.Sign(n.key); err != nil {
		return nil, err
	}
	n.publishTo(p2p.TopicCommitments, committed.Commitment, deadlineOf(job.ch), job.judges...)
	return committed, nil
}

// junkCommitment (adversary) is a signed commitment by this node to
// challenge chCID of ch's size (rows of C, or VRAM lanes) over a random
// root: no work behind it.
func (n *Node) junkCommitment(ch *pb.Challenge, chCID cid.Cid) (*pb.Commitment, error) {
	leaves := ch.GetN()
	if ch.GetWorkload() == pb.Workload_WORKLOAD_VRAM {
		leaves = ch.GetVramLanes()
	}
	// The missed challenge is of ch's epoch: a retry is of its epoch.
	junk := &pb.Commitment{ChallengeCid: chCID.Bytes(), Prover: []byte(n.id), MerkleRoot: make([]byte, 32), Leaves: max(leaves, 1), Epoch: ch.GetEpoch()}
	_, _ = rand.Read(junk.MerkleRoot)
	if _, err := challenge.SignCommitment(n.key, junk); err != nil {
		return nil, err
	}
	return junk, nil
}

// epochSkewProver (adversary, RoleEpochSkew) publishes, as soon as it
// is challenged, a signed junk commitment (a random root) naming the
// challenge's epoch + 1, then proves and commits honestly. It gains no
// answer from it; its aim is the peers that forward it.
type epochSkewProver struct{ *honestProver }

func (p epochSkewProver) commit(ctx context.Context, job proveJob) (*challenge.Committed, error) {
	n := p.n
	skewed := &pb.Challenge{Epoch: job.ch.GetEpoch() + 1, N: job.ch.GetN(), VramLanes: job.ch.GetVramLanes(), Workload: job.ch.GetWorkload()}
	junk, err := n.junkCommitment(skewed, job.cid)
	if err != nil {
		return nil, err
	}
	// Gossip alone: a direct copy reaching a judge first would make the
	// gossip copy a repeat of one offence, ignored (Node.rejected).
	n.publishTo(p2p.TopicCommitments, junk, deadlineOf(job.ch))
	return p.honestProver.commit(ctx, job)
}

// voiderProver (adversary, RoleVoider) does no work: it signs a junk
// commitment (a random root) and hands it to the verifiers alone — not to
// the challenger, not to gossip — and never opens. Before verifiers handed
// commitments on to the challenger, the challenger never revealed its
// secret, and the verifiers voided the challenge as the challenger's fault:
// the voider was never judged.
type voiderProver struct{ n *Node }

func (p voiderProver) limit(d time.Duration) time.Duration { return d }

func (p voiderProver) commit(ctx context.Context, job proveJob) (*challenge.Committed, error) {
	n := p.n
	junk, err := n.junkCommitment(job.ch, job.cid)
	if err != nil {
		return nil, err
	}
	b, err := challenge.Marshal(junk)
	if err != nil {
		return nil, err
	}
	challenger := peer.ID(job.ch.GetChallenger())
	for _, j := range job.judges {
		if j != challenger && j != n.id {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.sendDirect(p2p.TopicCommitments, b, j, deadlineOf(job.ch))
			}()
		}
	}
	return nil, nil
}

func (voiderProver) open(*tracked, *challenge.Committed) {}

// equivocatorProver (adversary, RoleEquivocator) computes
// EquivocatorFraction of the rows of a product (noise for the rest),
// hands that commitment to the challenger alone and, once the secret is
// revealed, grinds: it changes one made-up row until the rows sampled
// from the new root, the nonce and the secret are all computed ones, then
// publishes that second root to the verifiers and opens it. Before the
// reveal named the commitment it opens, verifiers never saw the first
// root and passed the second. VRAM challenges it proves honestly.
type equivocatorProver struct {
	*honestProver
	mu      sync.Mutex
	pending map[string]*partialAnswer
}

// partialAnswer is a product with only its first rows computed and noise
// for the rest (partialProduct): what the lazy provers commit to, and what
// the equivocator and the colluding target grind.
type partialAnswer struct {
	leaves [][32]byte
	rows   [][]byte // encoded rows of C
	honest int      // rows [0, honest) are computed
}

// maxGrind bounds the equivocator's tries at one secret: the expected
// number is EquivocatorFraction^-openings (about 30 at 66 openings).
const maxGrind = 5000

// maxCollusionGrind bounds RoleColludingChallenger's tries: about 2,000
// are expected at ColludingFraction and 66 openings (0.9⁻⁶⁶ with
// replacement, more without), some 30 hashes each.
const maxCollusionGrind = 50000

// maxPendingGrinds bounds the partial answers an equivocator holds for
// their reveals.
const maxPendingGrinds = 16

func (p *equivocatorProver) limit(d time.Duration) time.Duration { return d }

func (p *equivocatorProver) commit(ctx context.Context, job proveJob) (*challenge.Committed, error) {
	n, ch := p.n, job.ch
	if ch.GetWorkload() == pb.Workload_WORKLOAD_VRAM {
		return p.honestProver.commit(ctx, job)
	}
	e, err := partialProduct(ctx, n.cpu, ch, EquivocatorFraction)
	if err != nil {
		return nil, err
	}
	first, err := challenge.Commit(job.cid, n.id, e.leaves, func(i int) []byte { return e.rows[i] })
	if err != nil {
		return nil, err
	}
	n.listShares(ctx, job, first)
	if err := first.SetEpoch(ch.GetEpoch()); err != nil {
		return nil, err
	}
	if err := first.Sign(n.key); err != nil {
		return nil, err
	}
	b, err := challenge.Marshal(first.Commitment)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.pending == nil {
		p.pending = map[string]*partialAnswer{}
	}
	if len(p.pending) >= maxPendingGrinds {
		// Answers whose secret never came (open deletes the others):
		// each holds a whole product's rows.
		clear(p.pending)
	}
	p.pending[job.cid.KeyString()] = e
	p.mu.Unlock()
	n.sendDirect(p2p.TopicCommitments, b, peer.ID(ch.GetChallenger()), deadlineOf(ch))
	return first, nil
}

func (p *equivocatorProver) open(t *tracked, first *challenge.Committed) {
	p.mu.Lock()
	e := p.pending[t.cid.KeyString()]
	delete(p.pending, t.cid.KeyString())
	p.mu.Unlock()
	if e == nil {
		p.honestProver.open(t, first)
		return
	}
	n, ch, secret := p.n, t.ch, t.secret
	shares, _ := t.revealedShares(first.Commitment)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		second := grindRoot(ch, t.cid, n.id, challenge.SamplingSecret(secret, shares), e, maxGrind)
		if second == nil {
			p.honestProver.open(t, first) // no luck: open the first root
			return
		}
		second.Commitment.Shares = first.Commitment.GetShares()
		second.Commitment.Epoch = ch.GetEpoch()
		if err := second.Sign(n.key); err != nil {
			return
		}
		n.publishTo(p2p.TopicCommitments, second.Commitment, deadlineOf(ch), t.verifiers...)
		op, err := second.Open(n.ctx, ch, secret, shares...)
		if err != nil {
			return
		}
		n.publishTo(p2p.TopicOpenings, op, deadlineOf(ch), t.verifiers...)
	}()
}

// partialProduct (adversary) computes the first fraction of the rows of
// ch's product (a GEMM workload) on cpu and makes up the rest, keeping
// every encoded row and leaf hash for grindRoot.
func partialProduct(ctx context.Context, cpu *gpu.CPU, ch *pb.Challenge, fraction float64) (*partialAnswer, error) {
	shape, seed := challenge.ShapeOf(ch), challenge.Seed(ch)
	honest := int(float64(shape.N) * fraction)
	idx := make([]int, honest)
	for i := range idx {
		idx[i] = i
	}
	e := &partialAnswer{leaves: make([][32]byte, shape.N), rows: make([][]byte, shape.N), honest: honest}
	noise := make([]int8, shape.M)
	if ch.GetWorkload() == pb.Workload_WORKLOAD_GEMM_BF16 {
		part, err := cpu.RowsBF16(ctx, seed, shape, idx)
		if err != nil {
			return nil, err
		}
		for i := range shape.N {
			row := make([]float32, shape.M)
			if i < honest {
				copy(row, part.Row(i))
			} else {
				gpu.FillInt8Row(noise, seed, 7, i)
				for j, v := range noise {
					row[j] = float32(v) / 8
				}
			}
			e.rows[i], e.leaves[i] = gpu.EncodeFloat32Row(row), gpu.LeafHashFloat32(row)
		}
	} else {
		part, err := cpu.RowsInt8(ctx, seed, shape, idx)
		if err != nil {
			return nil, err
		}
		for i := range shape.N {
			row := make([]int32, shape.M)
			if i < honest {
				copy(row, part.Row(i))
			} else {
				gpu.FillInt8Row(noise, seed, 7, i)
				for j, v := range noise {
					row[j] = int32(v) * 1000
				}
			}
			e.rows[i], e.leaves[i] = gpu.EncodeInt32Row(row), gpu.LeafHash(row)
		}
	}
	return e, nil
}

// grindRoot (adversary) changes the last made-up row of e until the rows
// SampleRows draws from the new root, ch's nonce and randomness are all
// computed ones, and returns the commitment to that root, or nil after
// tries. Each try rehashes only the changed leaf's path to the
// root (log₂n + 1 hashes), the cost soundness.md counts.
func grindRoot(ch *pb.Challenge, chCID cid.Cid, prover peer.ID, randomness []byte, e *partialAnswer, tries int) *challenge.Committed {
	n := len(e.leaves)
	if e.honest >= n {
		return nil
	}
	tree, err := merkle.New(e.leaves)
	if err != nil {
		return nil
	}
	last := n - 1
	path, err := tree.Proof(last)
	if err != nil {
		return nil
	}
	openings := min(int(ch.GetOpenings()), n)
	row := append([]byte(nil), e.rows[last]...)
	for try := range tries {
		row[0] ^= byte(try + 1) // another made-up value
		row[1] ^= byte((try + 1) >> 8)
		leaf := merkle.LeafHash(row)
		root, err := merkle.RootFrom(n, last, leaf, path)
		if err != nil {
			return nil
		}
		idx, err := challenge.SampleRows(root, ch.GetNonce(), randomness, n, openings)
		if err != nil {
			return nil
		}
		if slices.ContainsFunc(idx, func(i int) bool { return i >= e.honest }) {
			continue
		}
		leaves := append([][32]byte(nil), e.leaves...)
		leaves[last] = leaf
		rows := append([][]byte(nil), e.rows...)
		rows[last] = append([]byte(nil), row...)
		c, err := challenge.Commit(chCID, prover, leaves, func(i int) []byte { return rows[i] })
		if err != nil {
			return nil
		}
		return c
	}
	return nil
}

// challengerRole is what a node does, as a challenger, beyond the
// protocol's steps: nothing for an honest node. The node consumes it
// through this interface only, so no adversary code runs on the honest
// path.
type challengerRole interface {
	// issued runs on the loop goroutine when the node has made challenge
	// ch (CID chCID) with opening secret secret, before publishing it.
	issued(ch *pb.Challenge, chCID cid.Cid, secret []byte)
}

// honestChallenger keeps its secrets.
type honestChallenger struct{}

func (honestChallenger) issued(*pb.Challenge, cid.Cid, []byte) {}

// challengingFor returns the challenger of n's role.
func challengingFor(n *Node) challengerRole {
	if n.role == RoleColludingChallenger && n.o.leak != nil {
		return leakingChallenger{n: n}
	}
	return honestChallenger{}
}

// Leak (ADVERSARY, devnet and tests only) is the side channel over which
// a RoleColludingChallenger challenger hands its target the opening
// secrets of its challenges of it before publishing them. Safe for
// concurrent use.
type Leak struct {
	// Challenger leaks, Target grinds.
	Challenger, Target peer.ID
	mu                 sync.Mutex
	secrets            map[string][]byte // challenge CID key → secret
}

// NewLeak returns an empty side channel from challenger to target.
func NewLeak(challenger, target peer.ID) *Leak {
	return &Leak{Challenger: challenger, Target: target, secrets: map[string][]byte{}}
}

func (l *Leak) put(chCID cid.Cid, secret []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.secrets) > 1024 {
		clear(l.secrets)
	}
	l.secrets[chCID.KeyString()] = append([]byte(nil), secret...)
}

func (l *Leak) take(chCID cid.Cid) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.secrets[chCID.KeyString()]
	delete(l.secrets, chCID.KeyString())
	return s
}

// leakingChallenger (adversary, RoleColludingChallenger) leaks the secret
// of each challenge of its target before publishing it.
type leakingChallenger struct{ n *Node }

func (c leakingChallenger) issued(ch *pb.Challenge, chCID cid.Cid, secret []byte) {
	if l := c.n.o.leak; c.n.id == l.Challenger && peer.ID(ch.GetTarget()) == l.Target {
		c.n.o.leak.put(chCID, secret)
	}
}

// colludingCompute (adversary, RoleColludingChallenger) wraps the honest
// compute of the pair's target: every GEMM challenge is answered with
// ColludingFraction of the rows computed, counting on the collusion to
// pass; one from its accomplice, whose secret leaked, with a root ground
// against that secret (grindRoot). VRAM challenges it proves honestly.
func (n *Node) colludingCompute(honest computeFunc) computeFunc {
	return func(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
		l := n.o.leak
		if l == nil || l.Target != n.id || ch.GetWorkload() == pb.Workload_WORKLOAD_VRAM {
			return honest(ctx, ch, chCID)
		}
		e, err := partialProduct(ctx, n.cpu, ch, ColludingFraction)
		if err != nil {
			return nil, err
		}
		if secret := l.take(chCID); secret != nil && peer.ID(ch.GetChallenger()) == l.Challenger {
			if c := grindRoot(ch, chCID, n.id, secret, e, maxCollusionGrind); c != nil {
				n.log.Debug("ground a root against the leaked secret", "challenge", chCID)
				return c, nil
			}
		}
		return challenge.Commit(chCID, n.id, e.leaves, func(i int) []byte { return e.rows[i] })
	}
}
