package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
)

// tryVerify verifies and attests once both the commitment and the opening
// of a challenge this node verifies have arrived.
func (tk *tracker) tryVerify(t *tracked) {
	if t.equivocation != nil {
		tk.judgeEquivocation(t)
		return
	}
	if v, ok := tk.judging.unchecked(t.target); ok && t.verifier && !t.settled() && t.com != nil {
		// ADVERSARY: attests on the commitment alone, checking nothing.
		tk.attest(t, v, max(t.comAt.Sub(t.receivedAt), 0), 0, 1, "unchecked")
		return
	}
	if !t.verifier || t.settled() || t.checking() || t.com == nil || t.op == nil || t.slim || t.secret == nil || !t.comCID.Equals(t.revealedCom) {
		return
	}
	if _, ok := t.revealedShares(t.com); !ok {
		return
	}
	t.advance(checking)
	tk.verifyOffLoop(t, func(res challenge.Result, err error) { tk.verified(t, res, err) })
}

// verifyOffLoop verifies t's opening off the loop — one verification at a
// time, bounded by verifyTimeout, so a costly opening never stalls the
// node's other work — and hands the result to done on the loop. t must
// hold its commitment, opening, secret and the shares its commitment
// lists.
func (tk *tracker) verifyOffLoop(t *tracked, done func(challenge.Result, error)) {
	ch, chCID, com, comCID, op, secret := t.ch, t.cid, t.com, t.comCID, t.op, t.secret
	shares, _ := t.revealedShares(com)
	// The check digests of this node and of every peer that may attest:
	// its own goes into its attestation, the others' judge theirs.
	digestOf := append(tk.possibleVerifiers(t), tk.id)
	tk.offLoop(func(ctx context.Context) {
		start := time.Now()
		res, err := challenge.Verify(ctx, tk.cpu, ch, chCID, com, comCID, op, secret, shares...)
		var digests map[peer.ID][]byte
		if err == nil {
			if digests, err = challenge.CheckDigests(ctx, tk.cpu, ch, chCID, secret, digestOf); err != nil {
				err = fmt.Errorf("check digests: %w", err)
			}
		}
		tk.metrics.verifyTime.Observe(time.Since(start).Seconds())
		tk.ev.post(func() {
			if err == nil && t.digests == nil {
				t.digests = digests
			}
			done(res, err)
		})
	})
}

// offLoop runs f on its own goroutine under the verification semaphore
// (verifications, re-checks and audits share it), with verifyTimeout, unless
// the node stops first.
func (tk *tracker) offLoop(f func(ctx context.Context)) {
	tk.wg.Add(1)
	go func() {
		defer tk.wg.Done()
		select {
		case tk.verifySem <- struct{}{}:
		case <-tk.ctx.Done():
			return
		}
		defer func() { <-tk.verifySem }()
		ctx, cancel := context.WithTimeout(tk.ctx, verifyTimeout)
		defer cancel()
		f(ctx)
	}()
}

// openGrace is the time a target has to open once the secret is revealed
// before its missing opening counts against it.
const openGrace = time.Second

// verifyTimeout bounds one verification.
const verifyTimeout = time.Minute

// verified attests the outcome of a verification.
func (tk *tracker) verified(t *tracked, res challenge.Result, err error) {
	if t.settled() {
		return
	}
	if err != nil {
		tk.log.Warn("verification aborted", "challenge", t.cid, "err", err)
		t.advance(undecided) // finalize decides
		return
	}
	// A commitment can beat its challenge to this node (it is then held as
	// an orphan): the latency on this clock is then zero, never negative.
	// Time the target spent proving earlier challenges of its own is not
	// its latency (busyOverlap).
	overlap := tk.busyOverlap(t)
	latency := max(t.comAt.Sub(t.receivedAt), 0) - overlap
	// A latency excused by an earlier proof (the prover chose when that
	// one committed), or timed while this node was overloaded, says
	// nothing about the device's speed: no speed sample.
	t.untimed = overlap > 0 || tk.overloaded(t.receivedAt, t.comAt)
	deadline := time.Duration(t.ch.GetDeadlineMs()) * time.Millisecond
	verdict := res.Verdict
	if t.equivocation != nil {
		// A second root turned up while this one was being checked.
		res.Verdict, res.Reason = pb.Verdict_VERDICT_WRONG_ANSWER, "equivocation: two signed commitments to one challenge"
		verdict = res.Verdict
	}
	if verdict == pb.Verdict_VERDICT_PASS && latency > deadline {
		if tk.withholdTiming(t, t.comAt) {
			tk.learnTruth(t, res.Verdict)
			return
		}
		verdict = pb.Verdict_VERDICT_LATE
		res.Reason = fmt.Sprintf("committed %d ms after the %d ms deadline", (latency - deadline).Milliseconds(), deadline.Milliseconds())
	}
	tk.attest(t, verdict, latency, res.Deviation, res.Accuracy, res.Reason)
	tk.learnTruth(t, res.Verdict)
	if verdict == pb.Verdict_VERDICT_PASS {
		if err := tk.outputs.add(t.ch, t.cid.String(), t.com); err != nil {
			tk.log.Warn("export outputs", "challenge", t.cid, "err", err)
		}
	}
}
