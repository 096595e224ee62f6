package node

import (
	"context"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu/nvml"
	"github.com/poai-network/poai/p2p"
)

// proverRole answers the challenges addressed to a node. The node consumes
// the role through this interface only: honestProver is the honest one,
// and every adversary's prover (adversary.go) is a separate implementation,
// so no adversary code runs on the honest path.
type proverRole interface {
	// limit bounds how long commit may run for a challenge with deadline
	// d.
	limit(d time.Duration) time.Duration
	// commit proves job within ctx, signs and publishes its commitment
	// and returns what open needs, or nil when there is nothing to open.
	// It runs on the prover goroutine.
	commit(ctx context.Context, job proveJob) (*challenge.Committed, error)
	// open publishes the opening of committed for t once the
	// challenger's secret (t.secret) and the shares committed lists are
	// revealed. It runs on the loop goroutine and must not block.
	open(t *tracked, committed *challenge.Committed)
}

// computeFunc computes a challenge's answer and commits to it, unsigned.
type computeFunc func(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error)

// honestProver proves on the node's backend, stamps the commitment with
// the device's state (NVML, on CUDA), lists the verifiers' share
// commitments it received (listShares), signs it, and hands it to gossip
// and directly to the challenge's judges; it opens what the revealed
// secret and shares sample.
type honestProver struct {
	n *Node
	// compute is the node's backend (challenge.Run); the replay, lazy
	// and relay adversaries swap in their own arithmetic and keep the
	// rest.
	compute computeFunc
}

func newHonestProver(n *Node) *honestProver {
	return &honestProver{n: n, compute: func(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
		return challenge.Run(ctx, n.backend, ch, chCID, n.id)
	}}
}

// limit: an answer 1.5x the deadline late earns nothing (see
// scoring.Attestation.Quality): stop there rather than burn the device.
func (p *honestProver) limit(d time.Duration) time.Duration { return d * 3 / 2 }

func (p *honestProver) commit(ctx context.Context, job proveJob) (*challenge.Committed, error) {
	n := p.n
	committed, err := p.compute(ctx, job.ch, job.cid)
	if err != nil {
		return nil, err
	}
	if n.backend.Info().Backend == "cuda" {
		// Record the device's clocks and temperature with the result.
		if sm, smMax, temp, err := nvml.State(n.nvmlIndex); n.nvmlIndex >= 0 && err == nil {
			if err := committed.Stamp(sm, smMax, temp); err != nil {
				n.log.Warn("stamp commitment", "err", err)
			}
		}
	}
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

func (p *honestProver) open(t *tracked, committed *challenge.Committed) {
	n := p.n
	ch, secret := t.ch, t.secret
	shares, _ := t.revealedShares(committed.Commitment)
	judges := append(t.verifiers[:len(t.verifiers):len(t.verifiers)], t.challenger)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		op, err := committed.Open(ch, secret, shares...)
		if err != nil {
			n.log.Error("open", "challenge", t.cid, "err", err)
			return
		}
		n.publishTo(p2p.TopicOpenings, op, deadlineOf(ch), judges...)
	}()
}
