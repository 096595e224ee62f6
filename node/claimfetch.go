package node

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
)

// A target that receives a challenge of itself from a peer it does not
// count live (no claim of it heard within the peer TTL: typically, the
// target has just restarted and the challenger's next claim is still to
// come) asks that peer for its claim over p2p.ClaimProtocol, and judges
// the challenge once the claim is in (or the request failed). Without the
// claim the challenger is not among the target's candidates, so not a
// scheduled challenger in its view, and the target would ignore a
// challenge every other node follows: NO_ANSWER for a restart.
//
// Why ask rather than answer anyway: the claim of the challenger does not
// size the work (the target plans the challenge from its own claim, and
// legitimate requires the exact plan), but it is what puts the challenger
// among the candidates of the schedule, and the schedule is what bounds
// the work anyone can make a target do: two challengers per epoch, one
// challenge and one retry each. A target answering challenges from
// challengers it cannot place in the schedule would prove for every
// identity that cared to ask. The fetched claim goes through the claims
// validator (shard, canonical form, freshness, rate) and onClaim exactly as
// a gossiped one, so it gives its author nothing it could not have by
// publishing the claim, and legitimate then runs in full: a sender that is
// not scheduled once its claim is known is still ignored.
//
// Bounds: only challenges of this node trigger a request; one request per
// sender per epoch (claimAskedFor), at most maxClaimFetches senders in
// flight and maxParkedPerSender challenges waiting on each; beyond them a
// challenge is judged at once, as before.
const (
	maxClaimFetches    = 32
	maxParkedPerSender = 4
)

// claimWait is a claim request in flight and the challenges waiting on it.
type claimWait struct {
	parked []parkedChallenge
}

type parkedChallenge struct {
	d  decoded
	at time.Time
}

// awaitClaim parks ch, a challenge of this node from a sender it does not
// count live, and asks the sender for its claim. It returns false when the
// challenge is to be judged now: the sender is live, was asked already
// this epoch, or the bounds are reached.
func (tk *tracker) awaitClaim(from peer.ID, d decoded, at time.Time) bool {
	ch := d.msg.(*pb.Challenge)
	if peer.ID(ch.GetTarget()) != tk.id || from == tk.id || tk.claims.live(from, at) {
		return false
	}
	if w, ok := tk.claimWaits[from]; ok {
		if slices.ContainsFunc(w.parked, func(p parkedChallenge) bool { return p.d.cid.Equals(d.cid) }) {
			return true // the gossip copy of a direct one, or the reverse
		}
		if len(w.parked) >= maxParkedPerSender {
			return false
		}
		w.parked = append(w.parked, parkedChallenge{d, at})
		return true
	}
	e := tk.clock.At(at)
	if asked, ok := tk.claimAsked[from]; ok && asked == e {
		return false
	}
	if len(tk.claimWaits) >= maxClaimFetches {
		return false
	}
	tk.claimAsked[from] = e
	tk.claimWaits[from] = &claimWait{parked: []parkedChallenge{{d, at}}}
	// The request eats into the deadline: a quarter of it at most, and
	// never more than a direct message's timeout.
	timeout := min(max(time.Duration(ch.GetDeadlineMs())*time.Millisecond/4, 500*time.Millisecond), 5*time.Second)
	validate := tk.validateClaim
	tk.wg.Add(1)
	go func() {
		defer tk.wg.Done()
		ctx, cancel := context.WithTimeout(tk.ctx, timeout)
		defer cancel()
		var claim *decoded
		b, err := tk.host.FetchClaim(ctx, from, challenge.DefaultLimits().MaxClaim)
		if err == nil {
			var m any
			if m, err = validate(ctx, from, b); err == nil {
				dc := m.(decoded)
				claim = &dc
			}
		}
		at := time.Now()
		tk.ev.post(func() { tk.claimFetched(from, claim, err, at) })
	}()
	tk.log.Debug("challenge from a peer whose claim is unknown here: asking it for its claim", "challenger", shortID(from), "challenge", d.cid)
	return true
}

// claimFetched takes the outcome of a claim request to from and judges the
// challenges that waited on it.
func (tk *tracker) claimFetched(from peer.ID, claim *decoded, err error, at time.Time) {
	w := tk.claimWaits[from]
	delete(tk.claimWaits, from)
	if claim != nil {
		tk.metrics.claimFetches.WithLabelValues("fetched").Inc()
		tk.claims.onClaim(from, *claim, at)
	} else {
		tk.metrics.claimFetches.WithLabelValues("failed").Inc()
		tk.log.Debug("claim request failed", "peer", shortID(from), "err", err)
	}
	if w == nil {
		return
	}
	for _, p := range w.parked {
		tk.onChallenge(from, p.d, p.at)
	}
}
