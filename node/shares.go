package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// Verifier shares: the opened leaves of a challenge derive from the
// target's root, the nonce, the challenger's secret and the shares of the
// verifiers the commitment lists (challenge.SamplingSecret). Each verifier
// draws a random share when it takes up the challenge and publishes its
// signed hash (publishShare), the target lists the share commitments it
// received in its commitment (listShares), and each listed verifier
// reveals its share once it holds that commitment (revealShare). A
// commitment that omits a share commitment the receiver held well before
// it (sharesComplete) is no answer. A challenger that leaks its secret to
// its target therefore gives it nothing to grind against: the shares of
// the verifiers that took the challenge up are unknown to it until its
// root is fixed. A verifier that stays silent (offline, or one of many
// identities that never verify) withholds nothing the target needs: the
// target lists what it has.

// maxOrphanShares bounds the share commitments held for one challenge not
// yet seen.
const maxOrphanShares = challenge.MaxShares

// publishShare draws this node's share of t, a challenge it verifies,
// and publishes its signed commitment, to gossip and directly to the
// target, which must list it before it commits.
func (tk *tracker) publishShare(t *tracked) {
	s := make([]byte, 32)
	if _, err := rand.Read(s); err != nil {
		tk.log.Error("share", "err", err)
		return
	}
	sh := &pb.Share{ChallengeCid: t.cid.Bytes(), Verifier: []byte(tk.id), Hash: challenge.ShareHash(s)}
	if err := challenge.SignShare(tk.key, sh); err != nil {
		tk.log.Error("sign share", "err", err)
		return
	}
	t.ownShare, t.ownShareMsg = s, sh
	tk.noteShare(t, tk.id, sh, time.Now())
	tk.gossip.publishTo(p2p.TopicReveals, &pb.Reveal{ChallengeCid: t.cid.Bytes(), Share: sh, Epoch: t.ch.GetEpoch()}, deadlineOf(t.ch), t.target)
}

// maxTargetShares bounds the share commitments a target keeps for one of
// its challenges (listShares lists at most challenge.MaxShares of them).
const maxTargetShares = 4 * challenge.MaxShares

// noteShare keeps the first share commitment of verifier for t, received
// at at. A peer other than the target keeps it if verifier may verify t in
// its view (possibleVerifiers), and requires it of the target's commitment
// (sharesComplete). The target keeps the share of any peer whose claim it
// knows: views of who is proven, and so of the verifiers, differ between
// peers, and a share the target dropped for its own view would make every
// verifier whose view differs refuse its commitment.
func (tk *tracker) noteShare(t *tracked, verifier peer.ID, sh *pb.Share, at time.Time) {
	if t.shares == nil {
		t.shares = map[peer.ID]*pb.Share{}
		t.shareAt = map[peer.ID]time.Time{}
	}
	if _, dup := t.shares[verifier]; dup {
		return
	}
	if t.target == tk.id {
		if _, known := tk.claims.peers[verifier]; !known || len(t.shares) >= maxTargetShares {
			return
		}
	} else if len(t.shares) >= challenge.MaxShares || verifier != tk.id && !slices.Contains(tk.possibleVerifiers(t), verifier) {
		return
	}
	t.shares[verifier] = sh
	t.shareAt[verifier] = at
}

// revealShare publishes this node's share of t once t holds a commitment
// of the target that lists it, with that commitment, to gossip and
// directly to the target.
func (tk *tracker) revealShare(t *tracked) {
	if t.ownShare == nil || t.shareRevealed || t.com == nil || !tk.sharing.reveals() {
		return
	}
	listed := challenge.ListedShare(t.com, tk.id)
	if listed == nil || !bytes.Equal(listed.GetHash(), t.ownShareMsg.GetHash()) {
		return
	}
	b, err := challenge.Marshal(t.com)
	if err != nil {
		return
	}
	t.shareRevealed = true
	tk.gossip.publishTo(p2p.TopicReveals, &pb.Reveal{ChallengeCid: t.cid.Bytes(), Share: t.ownShareMsg, Secret: t.ownShare, Commitment: b, Epoch: t.ch.GetEpoch()},
		deadlineOf(t.ch), t.target)
}

// onShare takes a verifier's share commitment or share reveal.
func (tk *tracker) onShare(from peer.ID, r *pb.Reveal, at time.Time) {
	key := string(r.GetChallengeCid())
	t, ok := tk.tracked[key]
	if len(r.GetSecret()) == 0 {
		if !ok {
			o := tk.orphan(key, at)
			if len(o.shares) < maxOrphanShares {
				o.shares = append(o.shares, orphanShare{share: r.GetShare(), epoch: r.GetEpoch()})
			}
			return
		}
		if tk.epochMatches(t, p2p.TopicReveals, r.GetEpoch(), from) {
			tk.noteShare(t, from, r.GetShare(), at)
		}
		return
	}
	if !ok || !tk.epochMatches(t, p2p.TopicReveals, r.GetEpoch(), from) {
		return
	}
	rc, err := challenge.RevealedCommitment(r)
	if err != nil || peer.ID(rc.Commitment.GetProver()) != t.target {
		tk.log.Info("share reveal names no commitment of its target", "verifier", shortID(from), "challenge", t.cid)
		return
	}
	if t.shareSecrets == nil {
		t.shareSecrets = map[string][]byte{}
	}
	h := string(r.GetShare().GetHash())
	if _, dup := t.shareSecrets[h]; dup {
		return
	}
	t.shareSecrets[h] = r.GetSecret()
	tk.afterReveal(t, from, rc, at)
}

// revealedShares returns the revealed shares of every share com lists, in
// its order; ok is false while any is missing.
func (t *tracked) revealedShares(com *pb.Commitment) (shares [][]byte, ok bool) {
	for _, s := range com.GetShares() {
		v, ok := t.shareSecrets[string(s.GetHash())]
		if !ok {
			return nil, false
		}
		shares = append(shares, v)
	}
	return shares, true
}

// missingShares returns the verifiers com lists whose shares have not
// been revealed.
func (t *tracked) missingShares(com *pb.Commitment) []peer.ID {
	var out []peer.ID
	for _, s := range com.GetShares() {
		if _, ok := t.shareSecrets[string(s.GetHash())]; !ok {
			out = append(out, peer.ID(s.GetVerifier()))
		}
	}
	return out
}

// shareGrace is how long before a commitment reached this node, as a
// share of its challenge's deadline, a share commitment must have reached
// it for the commitment to have to list it: a share that came just before
// may not have reached the target in time. An eighth of the deadline is
// under the anticipated proof time, so a target cannot both prove and
// claim not to have had the shares published when the challenge came.
const shareGrace = 8

// sharesComplete returns the verifier whose share commitment this node
// received more than deadline/shareGrace before com arrived at at, and
// which com does not list with the same hash, or "" when there is none.
// Such a commitment is no answer: its sampling may leave out the one
// secret its target (and a colluding challenger) did not know.
func (tk *tracker) sharesComplete(t *tracked, com *pb.Commitment, at time.Time) peer.ID {
	cutoff := at.Add(-deadlineOf(t.ch) / shareGrace)
	for v, sh := range t.shares {
		if v == t.target || !t.shareAt[v].Before(cutoff) {
			continue
		}
		if l := challenge.ListedShare(com, v); l == nil || !bytes.Equal(l.GetHash(), sh.GetHash()) {
			return v
		}
	}
	return ""
}

// sharePoll is how often a target checks for share commitments while it
// waits for a quorum of them.
const sharePoll = 10 * time.Millisecond

// listShares lists in c the share commitments this node, the target of
// job, has received: it waits until it holds those of every verifier of
// the challenge, but no later than a quarter of the deadline after the
// challenge came (shares are published as the challenge arrives, so they
// are in long before the proof is done; a silent verifier's never come),
// then lists every one it holds, ordered by verifier. Call it before
// signing c. It runs on the prover goroutine.
func (tk *tracker) listShares(ctx context.Context, job proveJob, c *challenge.Committed) {
	until := job.at.Add(deadlineOf(job.ch) / 4)
	for {
		got, missing := make(chan []*pb.Share, 1), 0
		var prefer []peer.ID
		tk.ev.post(func() {
			t, ok := tk.tracked[job.cid.KeyString()]
			if !ok {
				got <- nil
				return
			}
			for _, v := range t.verifiers {
				if _, ok := t.shares[v]; !ok && v != tk.id {
					missing++
				}
			}
			prefer = tk.possibleVerifiers(t)
			var out []*pb.Share
			for _, s := range t.shares {
				out = append(out, s)
			}
			got <- out
		})
		var shares []*pb.Share
		select {
		case shares = <-got:
		case <-ctx.Done():
			return
		}
		if missing == 0 || !time.Now().Before(until) {
			c.Commitment.Shares = pickShares(shares, prefer)
			return
		}
		select {
		case <-time.After(sharePoll):
		case <-ctx.Done():
			return
		}
	}
}

// pickShares returns at most challenge.MaxShares of shares, those of the
// preferred verifiers (the target's possible verifiers) first and then the
// others by verifier, ordered by verifier: the order the sampling combines
// them in.
func pickShares(shares []*pb.Share, prefer []peer.ID) []*pb.Share {
	rank := func(s *pb.Share) int {
		if slices.Contains(prefer, peer.ID(s.GetVerifier())) {
			return 0
		}
		return 1
	}
	slices.SortFunc(shares, func(a, b *pb.Share) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return bytes.Compare(a.GetVerifier(), b.GetVerifier())
	})
	out := shares[:min(len(shares), challenge.MaxShares)]
	slices.SortFunc(out, func(a, b *pb.Share) int { return bytes.Compare(a.GetVerifier(), b.GetVerifier()) })
	return out
}
