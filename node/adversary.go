package node

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
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
	// RoleSybilFlood (adversary) is one of many identities that only
	// announce a device claim, with no device behind it: it never proves,
	// never issues a challenge and never attests, and only takes the
	// challenger and verifier slots the schedule would give it
	// (sybilFlood).
	RoleSybilFlood Role = "sybil-flood"
)

// Adversary parameters.
const (
	SlowClaimFactor   = 8
	LazyFraction      = 0.5
	OnOffHonestEpochs = 4
	// ForgedModel is the catalog model RoleForgedNVML claims.
	ForgedModel = "NVIDIA H100 80GB HBM3"
)

// Roles lists the roles in the order devnet reports them.
var Roles = []Role{RoleHonest, RoleSlow, RoleLazy, RoleReplay, RoleRelay, RoleForgedNVML, RoleLazyVerifier, RoleColluder, RoleSybil, RoleOnOff, RoleSybilFlood}

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

// provesLazily reports whether, for a challenge of epoch e, this node's
// role computes only part of the rows.
func (n *Node) provesLazily(e uint64) bool {
	switch n.role {
	case RoleLazy, RoleColluder, RoleSybil:
		return true
	case RoleOnOff:
		return n.startEpoch != nil && e >= *n.startEpoch+OnOffHonestEpochs
	}
	return false
}

// cliqueVerdict (adversary) is what a colluder or sybil attests without
// checking: PASS for a member of its clique, WRONG_ANSWER for anyone else
// (sybils, who want to pass unnoticed, attest PASS for everyone). The
// lazy verifier attests PASS for everyone. ok is false for honest roles.
func (n *Node) cliqueVerdict(target peer.ID) (v pb.Verdict, ok bool) {
	switch n.role {
	case RoleLazyVerifier, RoleSybil:
		return pb.Verdict_VERDICT_PASS, true
	case RoleColluder:
		if slices.Contains(n.o.clique, target) {
			return pb.Verdict_VERDICT_PASS, true
		}
		return pb.Verdict_VERDICT_WRONG_ANSWER, true
	}
	return 0, false
}

// forgedReport (adversary) is an NVML report that matches ForgedModel.
func forgedReport() *pb.DeviceReport {
	spec, _ := gpu.LookupDevice(ForgedModel)
	return &pb.DeviceReport{Name: ForgedModel, Uuid: "GPU-00000000-forged", MemoryTotalBytes: spec.VRAMBytes + spec.VRAMBytes/20,
		SmClockMaxMhz: 1980, SmClockMhz: 1980, PowerLimitMw: 700000, EccEnabled: true, PcieGen: 5, PcieWidth: 16, DriverVersion: "580.00"}
}

// relayProve (adversary) has its accomplice's device prove the challenge
// (the accomplice's backend, shared and serialized with the accomplice's
// own work) and answers as if it had.
func (n *Node) relayProve(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
	if n.o.accomplice == nil {
		return nil, fmt.Errorf("relay without an accomplice")
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
	shape := challenge.ShapeOf(ch)
	honest := int(float64(shape.N) * LazyFraction)
	rows := make([]int, honest)
	for i := range rows {
		rows[i] = i
	}
	seed := challenge.Seed(ch)
	noise := make([]int8, shape.M)
	leaves := make([][32]byte, shape.N)
	switch ch.GetWorkload() {
	case pb.Workload_WORKLOAD_GEMM_BF16:
		part, err := n.cpu.RowsBF16(ctx, seed, shape, rows)
		if err != nil {
			return nil, err
		}
		c := &gpu.Float32Matrix{Rows: shape.N, Cols: shape.M, Data: make([]float32, shape.N*shape.M)}
		copy(c.Data, part.Data)
		for i := range shape.N {
			if i >= honest {
				gpu.FillInt8Row(noise, seed, 7, i)
				for j, v := range noise {
					c.Row(i)[j] = float32(v) / 8
				}
			}
			leaves[i] = gpu.LeafHashFloat32(c.Row(i))
		}
		return challenge.CommitBF16(ch, chCID, n.id, c, leaves)
	default:
		part, err := n.cpu.RowsInt8(ctx, seed, shape, rows)
		if err != nil {
			return nil, err
		}
		c := &gpu.Int32Matrix{Rows: shape.N, Cols: shape.M, Data: make([]int32, shape.N*shape.M)}
		copy(c.Data, part.Data)
		for i := range shape.N {
			if i >= honest {
				gpu.FillInt8Row(noise, seed, 7, i)
				for j, v := range noise {
					c.Row(i)[j] = int32(v) * 1000
				}
			}
			leaves[i] = gpu.LeafHash(c.Row(i))
		}
		return challenge.CommitInt8(ch, chCID, n.id, c, leaves)
	}
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
