package node

import (
	"context"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

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

func (p *honestProver) open(t *tracked, committed *challenge.Committed) {
	n := p.n
	ch, secret := t.ch, t.secret
	shares, _ := t.revealedShares(committed.Commitment)
	judges := append(t.verifiers[:len(t.verifiers):len(t.verifiers)], t.challenger)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		op, err := committed.Open(n.ctx, ch, secret, shares...)
		if err != nil {
			n.log.Error("open", "challenge", t.cid, "err", err)
			return
		}
		n.gossip.publishTo(p2p.TopicOpenings, op, deadlineOf(ch), judges...)
	}()
}

type proveJob struct {
	ch  *pb.Challenge
	cid cid.Cid
	// judges are the challenger and verifiers, who also get the
	// commitment directly.
	judges []peer.ID
	// at is when the challenge passed this node's validator.
	at time.Time
}

// prover answers challenges addressed to this node, one at a time.
func (tk *tracker) prover() {
	defer tk.wg.Done()
	for {
		select {
		case <-tk.ctx.Done():
			return
		case job := <-tk.proveQ:
			tk.answer(job)
		}
	}
}

func (tk *tracker) answer(job proveJob) {
	deadline := deadlineOf(job.ch)
	ctx, cancel := context.WithTimeout(tk.ctx, tk.proving.limit(deadline))
	defer cancel()
	start := time.Now()
	tk.metrics.proveWait.Observe(start.Sub(job.at).Seconds())
	committed, err := tk.proving.commit(ctx, job)
	tk.metrics.proveTime.Observe(time.Since(start).Seconds())
	if err != nil {
		tk.metrics.answered.WithLabelValues("failed").Inc()
		tk.stats.bump(func(s *Stats) { s.ProveFailed++ })
		if tk.ctx.Err() == nil {
			tk.log.Warn("proof not completed", "challenge", job.cid, "took", time.Since(start).Round(time.Millisecond), "err", err)
		}
		tk.ev.post(func() {
			if r := tk.proofs.get(job.cid); r != nil {
				r.ProveError = err.Error()
			}
		})
		return
	}
	if committed == nil {
		return // the role answers nothing (an adversary)
	}
	tk.metrics.answered.WithLabelValues("answered").Inc()
	tk.stats.bump(func(s *Stats) { s.Answered++ })
	tk.log.Debug("challenge answered", "challenge", job.cid, "took", time.Since(start).Round(time.Millisecond), "deadline", deadline)
	// The opening waits for the challenger's secret (onReveal).
	proved := time.Since(job.at)
	tk.ev.post(func() {
		if r := tk.proofs.get(job.cid); r != nil {
			r.ProveMS = float64(proved.Microseconds()) / 1000
		}
		if t, ok := tk.tracked[job.cid.KeyString()]; ok {
			t.committed = committed
			tk.open(t)
		}
	})
}

// open publishes this node's opening of a challenge it proved, once its
// commitment, the challenger's secret and the shares it lists are there.
func (tk *tracker) open(t *tracked) {
	if t.committed == nil || t.secret == nil || t.opened {
		return
	}
	if _, ok := t.revealedShares(t.committed.Commitment); !ok {
		return
	}
	t.opened = true
	if r := tk.proofs.get(t.cid); r != nil {
		r.Opened = true
	}
	tk.proving.open(t, t.committed)
	// The opening is out: its goroutine holds the proof until it is sent,
	// and nothing opens t again. A VRAM proof holds 32 bytes per lane,
	// hundreds of MB on a large device, which the 3 epochs t is followed
	// for kept alive.
	t.committed = nil
}
