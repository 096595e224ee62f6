package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/poai-network/poai/challenge"
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
	// RoleSlow (adversary) claims SlowClaimFactor times the throughput it
	// has, so its workloads are sized for a faster device and it misses
	// the deadlines.
	RoleSlow Role = "slow"
	// RoleLazy (adversary) computes only LazyFraction of the rows and
	// fills the rest with noise, committing to all of them.
	RoleLazy Role = "lazy"
	// RoleReplay (adversary) answers its first challenge honestly and every
	// later one with that first result, relabelled for the new challenge.
	RoleReplay Role = "replay"
)

// Adversary parameters.
const (
	SlowClaimFactor = 8
	LazyFraction    = 0.5
)

// Roles lists the roles in the order devnet reports them.
var Roles = []Role{RoleHonest, RoleSlow, RoleLazy, RoleReplay}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == strings.ToLower(strings.TrimSpace(s)) {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (known: honest, slow, lazy, replay)", s)
}

// Adversary reports whether the role cheats.
func (r Role) Adversary() bool { return r != RoleHonest && r != "" }

// lazyProve (adversary) computes rows [0, LazyFraction·n) honestly, fills
// the others with Philox noise, and commits to the lot.
func (n *Node) lazyProve(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*pb.Commitment, *pb.Opening, error) {
	shape := challenge.ShapeOf(ch)
	honest := int(float64(shape.N) * LazyFraction)
	rows := make([]int, honest)
	for i := range rows {
		rows[i] = i
	}
	seed := challenge.Seed(ch)
	part, err := n.cpu.RowsInt8(ctx, seed, shape, rows)
	if err != nil {
		return nil, nil, err
	}
	c := &gpu.Int32Matrix{Rows: shape.N, Cols: shape.M, Data: make([]int32, shape.N*shape.M)}
	copy(c.Data, part.Data)
	noise := make([]int8, shape.M)
	leaves := make([][32]byte, shape.N)
	for i := 0; i < shape.N; i++ {
		if i >= honest {
			gpu.FillInt8Row(noise, seed, 7, i)
			for j, v := range noise {
				c.Row(i)[j] = int32(v) * 1000
			}
		}
		leaves[i] = gpu.LeafHash(c.Row(i))
	}
	return challenge.Commit(ch, chCID, n.id, c, leaves)
}

// replayProve (adversary) answers with the result of its first challenge.
func (n *Node) replayProve(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*pb.Commitment, *pb.Opening, error) {
	if n.replay.c == nil {
		c, leaves, err := n.backend.MatMulInt8(ctx, challenge.Seed(ch), challenge.ShapeOf(ch))
		if err != nil {
			return nil, nil, err
		}
		n.replay.c, n.replay.leaves = c, leaves
	}
	return challenge.Commit(ch, chCID, n.id, n.replay.c, n.replay.leaves)
}
