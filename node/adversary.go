package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
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
	// RoleShareWithholder (adversary) proves and verifies honestly, but
	// as a verifier it publishes its share commitment, which the target
	// must list, and never reveals the share: the target cannot open what
	// the shares sample (shareWithholder). Honest verifiers used to
	// attest NO_ANSWER against the target it framed; the challenge is now
	// void and the withholder contradicted (finalize).
	RoleShareWithholder Role = "share-withholder"
	// RoleLazyLLM (adversary) runs half the layers of the llm model (a
	// smaller model), the rest passing the stream through.
	RoleLazyLLM Role = "lazy-llm"
	// RoleCheapAttention (adversary) attends to the last
	// CheapAttentionWindow positions only (windowed attention).
	RoleCheapAttention Role = "cheap-attention"
	// RoleShortDecode (adversary) decodes half the tokens and pads the
	// rest with the last one.
	RoleShortDecode Role = "short-decode"
	// RoleBatchedGuess (adversary) guesses the decode (its first token
	// repeated) and runs the whole sequence as one batched prefill.
	RoleBatchedGuess Role = "batched-guess"
	// RoleReplayLLM (adversary) answers every llm challenge of a shape
	// with its first answer (another prompt's sequence).
	RoleReplayLLM Role = "replay-llm"
	// RoleUnderpowered (adversary) claims UnderpoweredClaimFactor times
	// the throughput it has: its device delivers about 85 % of its claim,
	// so every answer still comes inside the deadline's slack and passes.
	// Only the speed test (scoring.SpeedMonitor) tells it from its peers.
	RoleUnderpowered Role = "underpowered"
)

// Adversary parameters.
const (
	SlowClaimFactor = 8
	// UnderpoweredClaimFactor: a device delivering 1/1.18 ≈ 85 % of what
	// RoleUnderpowered claims.
	UnderpoweredClaimFactor = 1.18
	LazyFraction            = 0.5
	OnOffHonestEpochs       = 4
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
	RoleSybilFlood, RoleColludingChallenger, RoleSharedDevice, RoleEpochSkew, RoleShareWithholder,
	RoleLazyLLM, RoleCheapAttention, RoleShortDecode, RoleBatchedGuess, RoleReplayLLM, RoleUnderpowered}

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
	case RoleHonest, "", RoleLazyVerifier, RoleForgedNVML, RoleSlow, RoleSibling, RoleInflate, RoleVRAMDodger, RoleSharedDevice, RoleShareWithholder,
		RoleUnderpowered:
		if n.role.Adversary() {
			return cappedProver{h}
		}
		return h
	case RoleLazy, RoleColluder, RoleSybil:
		h.compute = lazyCompute(n)
	case RoleOnOff:
		honest, lazy := h.compute, lazyCompute(n)
		h.compute = func(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
			if n.startEpoch != nil && ch.GetEpoch() >= *n.startEpoch+OnOffHonestEpochs {
				return lazy(ctx, ch, chCID)
			}
			return honest(ctx, ch, chCID)
		}
	case RoleRelay:
		h.compute = relayCompute(n)
	case RoleReplay:
		h.compute = replayCompute(n)
	case RoleLateJunk:
		return &lateJunkProver{honestProver: h}
	case RoleEquivocator:
		return &equivocatorProver{honestProver: h}
	case RoleVoider:
		return voiderProver{n: n}
	case RoleEpochSkew:
		return cappedProver{epochSkewProver{h}}
	case RoleColludingChallenger:
		h.compute = colludingCompute(n, h.compute)
	case RoleLazyLLM, RoleCheapAttention, RoleShortDecode, RoleBatchedGuess:
		h.compute = llmCheatCompute(n, h.compute)
	case RoleReplayLLM:
		h.compute = replayLLMCompute(n, h.compute)
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

// overClaimer (adversary: RoleSlow, RoleLateJunk, RoleUnderpowered) claims a device factor
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
// than 1 for the adversaries that over-claim (RoleSlow, RoleLateJunk,
// RoleUnderpowered).
func (r Role) ClaimFactor() float64 {
	switch r {
	case RoleSlow:
		return SlowClaimFactor
	case RoleLateJunk:
		return LateJunkClaimFactor
	case RoleUnderpowered:
		return UnderpoweredClaimFactor
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
// routes by (appScores.set consumes it): honestRouting uses the trust
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

// sharerRole is whether a verifier reveals the share it committed to
// once the target's commitment lists it. The node consumes it through
// this interface only (revealShare): honestSharer reveals; an
// ADVERSARY's withholds.
type sharerRole interface {
	reveals() bool
}

// honestSharer reveals every listed share.
type honestSharer struct{}

func (honestSharer) reveals() bool { return true }

// sharerFor returns the sharer of role r.
func sharerFor(r Role) sharerRole {
	if r == RoleShareWithholder {
		return shareWithholder{}
	}
	return honestSharer{}
}

// shareWithholder (adversary, RoleShareWithholder) never reveals a share.
type shareWithholder struct{}

func (shareWithholder) reveals() bool { return false }

// forgedReport (adversary) is an NVML report that matches ForgedModel.
func forgedReport() *pb.DeviceReport {
	spec, _ := gpu.LookupDevice(ForgedModel)
	return &pb.DeviceReport{Name: ForgedModel, Uuid: "GPU-00000000-forged", MemoryTotalBytes: spec.VRAMBytes + spec.VRAMBytes/20,
		SmClockMaxMhz: 1980, SmClockMhz: 1980, PowerLimitMw: 700000, EccEnabled: true, PcieGen: 5, PcieWidth: 16, DriverVersion: "580.00"}
}
