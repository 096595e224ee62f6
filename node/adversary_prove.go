package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/p2p"
)

// The labelled adversaries' provers (proverFor wires them): each changes
// what a prover computes or how it answers, and is caught by a check the
// honest path makes.

// RelayRoundTrip is the time the relay's forwarded challenge takes to
// reach its accomplice's device: a one-way trip between two hosts and the
// queueing on the accomplice's side (the answer's way back is the
// commitment's own publication). At 20 ms, on a 20-peer devnet, gossip
// delivered the accomplice's own challenge of a wave later than the
// relay's forward in 3 of 7 waves, so the accomplice missed instead of
// the relay; its operator, who serves its own challenge first, would
// not allow that.
const RelayRoundTrip = 100 * time.Millisecond

// relayCompute (adversary) forwards the challenge to its accomplice, whose
// device proves it (the accomplice's backend, shared and serialized with
// the accomplice's own work), and answers as if it had. The forwarded
// challenge reaches the device RelayRoundTrip after the relay got it, so
// the accomplice's own challenge of the same instant runs first.
func relayCompute(n *Node) computeFunc {
	return func(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
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
}

// Adversary reports whether the role cheats.
func (r Role) Adversary() bool { return r != RoleHonest && r != "" }

// lazyCompute (adversary) computes rows [0, LazyFraction·n) honestly on
// n's CPU, fills the others with noise, and commits to the lot.
func lazyCompute(n *Node) computeFunc {
	return func(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
		if ch.GetWorkload() == pb.Workload_WORKLOAD_VRAM {
			return lazyVRAM(ch, chCID, n.id)
		}
		e, err := partialProduct(ctx, n.cpu, ch, LazyFraction)
		if err != nil {
			return nil, err
		}
		return challenge.Commit(chCID, n.id, e.leaves, func(i int) []byte { return e.rows[i] })
	}
}

// lazyVRAM (adversary) fills the memory but runs the read chains of only
// the first LazyFraction of the lanes, making up the other lanes' outputs,
// and commits to them as prover.
func lazyVRAM(ch *pb.Challenge, chCID cid.Cid, prover peer.ID) (*challenge.Committed, error) {
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
	return challenge.Commit(chCID, prover, leaves, func(i int) []byte { return outputs[i][:] })
}

// replayAnswer is a result kept by the replay adversary.
type replayAnswer struct {
	leaves [][32]byte
	value  func(i int) []byte
}

// replayCompute (adversary) answers with the result of its first
// challenge of the same workload, computed on n's backend. Its memory of
// those results is the prover goroutine's alone.
func replayCompute(n *Node) computeFunc {
	replay := map[pb.Workload]replayAnswer{}
	return func(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
		old, ok := replay[ch.GetWorkload()]
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
			replay[ch.GetWorkload()] = old
		}
		return challenge.Commit(chCID, n.id, old.leaves, old.value)
	}
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
	junk, err := junkCommitment(n.key, n.id, job.ch, missed)
	if err != nil {
		return nil, err
	}
	n.gossip.publishTo(p2p.TopicCommitments, junk, deadlineOf(job.ch), job.judges...)
	time.Sleep(20 * time.Millisecond) // the junk first, then the answer
	n.tk.listShares(ctx, job, committed)
	if err := committed.SetEpoch(job.ch.GetEpoch()); err != nil {
		return nil, err
	}
	if err := committed.Sign(n.key); err != nil {
		return nil, err
	}
	n.gossip.publishTo(p2p.TopicCommitments, committed.Commitment, deadlineOf(job.ch), job.judges...)
	return committed, nil
}

// junkCommitment (adversary) is a commitment to challenge chCID of ch's
// size (rows of C, or VRAM lanes) over a random root, no work behind it,
// signed with key as prover.
func junkCommitment(key crypto.PrivKey, prover peer.ID, ch *pb.Challenge, chCID cid.Cid) (*pb.Commitment, error) {
	leaves := ch.GetN()
	if ch.GetWorkload() == pb.Workload_WORKLOAD_VRAM {
		leaves = ch.GetVramLanes()
	}
	// The missed challenge is of ch's epoch: a retry is of its epoch.
	junk := &pb.Commitment{ChallengeCid: chCID.Bytes(), Prover: []byte(prover), MerkleRoot: make([]byte, 32), Leaves: max(leaves, 1), Epoch: ch.GetEpoch()}
	_, _ = rand.Read(junk.MerkleRoot)
	if _, err := challenge.SignCommitment(key, junk); err != nil {
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
	junk, err := junkCommitment(n.key, n.id, skewed, job.cid)
	if err != nil {
		return nil, err
	}
	// Gossip alone: a direct copy reaching a judge first would make the
	// gossip copy a repeat of one offence, ignored (Node.rejected).
	n.gossip.publishTo(p2p.TopicCommitments, junk, deadlineOf(job.ch))
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
	junk, err := junkCommitment(n.key, n.id, job.ch, job.cid)
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
				n.gossip.sendDirect(p2p.TopicCommitments, b, j, deadlineOf(job.ch))
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
	n.tk.listShares(ctx, job, first)
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
	n.gossip.sendDirect(p2p.TopicCommitments, b, peer.ID(ch.GetChallenger()), deadlineOf(ch))
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
		n.gossip.publishTo(p2p.TopicCommitments, second.Commitment, deadlineOf(ch), t.verifiers...)
		op, err := second.Open(n.ctx, ch, secret, shares...)
		if err != nil {
			return
		}
		n.gossip.publishTo(p2p.TopicOpenings, op, deadlineOf(ch), t.verifiers...)
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
func colludingCompute(n *Node, honest computeFunc) computeFunc {
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
