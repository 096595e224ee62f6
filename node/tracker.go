package node

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// tracked is a challenge this node has seen, with what arrived for it.
type tracked struct {
	ch         *pb.Challenge
	cid        cid.Cid
	target     peer.ID
	challenger peer.ID
	receivedAt time.Time
	verifiers  []peer.ID
	verifier   bool
	com        *pb.Commitment
	comCID     cid.Cid
	comAt      time.Time
	op         *pb.Opening
	opCID      cid.Cid // op's content ID, evidence in this node's attestation
	// untimed: the latency of this PASS is excused or was timed under
	// overload, so it is no speed sample (checkProofSpeed).
	untimed   bool
	secret    []byte // the challenger's revealed opening secret
	revealAt  time.Time
	committed *challenge.Committed // this node's own proof, when it is the target, until it is opened
	opened    bool
	// slim: op's rows were dropped (slimOpening), so t can no longer be
	// verified or re-checked from it.
	slim bool
	// state is where this node stands on its verdict (verdictState).
	state verdictState
	// Re-checks: other verifiers' verdicts, and the truth once this node
	// verified or re-checked the answer itself.
	atts map[peer.ID]heardVerdict
	// digests are the check digests (challenge.CheckDigests) this node
	// computed, alongside its verification or re-check, for itself and
	// for every peer that may verify the challenge; nil entries for
	// workloads without one.
	digests       map[peer.ID][]byte
	truth         pb.Verdict
	truthKnown    bool
	recheckWanted bool
	rechecking    bool
	auditing      bool // tryAudit is computing digests
	// claimWait: no answer came by the deadline, and a verdict is due
	// after the next epoch's claims, which tell a silent target from one
	// that did not answer (finalize); set once.
	claimWait bool
	// revealedCom is the commitment the challenger's reveal names (the one
	// it received first); openings count only against it.
	revealedCom cid.Cid
	// equivocation holds a second signed commitment of the target, other
	// than com: proof that it committed to two roots (acceptCommitment).
	equivocation    *pb.Commitment
	equivocationCID cid.Cid
	// Verifier shares (shares.go): this node's own share and its signed
	// commitment, when it verifies t; the share commitments heard, by
	// verifier; the revealed shares, by share hash; whether this node
	// revealed its own; when the last secret or share was revealed.
	ownShare      []byte
	ownShareMsg   *pb.Share
	shares        map[peer.ID]*pb.Share
	shareAt       map[peer.ID]time.Time
	shareSecrets  map[string][]byte
	shareRevealed bool
	lastRevealAt  time.Time
}

// verdictState is where a node stands on its verdict about a challenge
// it follows (tracked.state). The transitions, all through advance:
//
//	undecided → checking   the answer (or an equivocation's digests) is
//	                       being checked off the loop (tryVerify,
//	                       judgeEquivocation)
//	checking → undecided   the check was aborted: finalize decides
//	undecided → settled    attested, withheld (withholdTiming) or voided
//	checking → settled     the same, while a check was in flight (its
//	                       result is then dropped)
//
// settled is final.
type verdictState uint8

const (
	// undecided: no verdict yet; the answer may still come.
	undecided verdictState = iota
	// checking: a check of the answer is running off the loop.
	checking
	// settled: a verdict was attested or withheld, or the challenge was
	// voided: nothing more is decided about it.
	settled
)

// advance moves t's verdict state to s if the transition is one of
// verdictState's, and reports whether it did: from settled nothing moves,
// and undecided → undecided or checking → checking are not transitions.
func (t *tracked) advance(s verdictState) bool {
	switch {
	case t.state == settled, s == t.state:
		return false
	case s == settled, t.state == undecided && s == checking, t.state == checking && s == undecided:
		t.state = s
		return true
	}
	return false
}

// settled reports whether t's verdict is settled (verdictState).
func (t *tracked) settled() bool { return t.state == settled }

// checking reports whether a check of t's answer is running off the loop.
func (t *tracked) checking() bool { return t.state == checking }

// answerState says, for a verdict's reason, what this node holds of t's
// answer and what it needed to check it.
func (t *tracked) answerState() string {
	has := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	return fmt.Sprintf("opening %s, secret %s, shares missing %d, commitment revealed %s, slim %s",
		has(t.op != nil), has(t.secret != nil), len(t.missingShares(t.com)), has(t.com != nil && t.comCID.Equals(t.revealedCom)), has(t.slim))
}

// answeredInTime reports whether the target's commitment reached this
// node within the challenge's deadline of the challenge itself, on this
// node's clock.
func (t *tracked) answeredInTime() bool {
	return t.com != nil && t.comAt.Sub(t.receivedAt) <= time.Duration(t.ch.GetDeadlineMs())*time.Millisecond
}

// orphan holds a commitment or opening that arrived before its challenge.
type orphan struct {
	coms   []orphanCommitment // at most maxOrphanSenders, first per sender
	shares []orphanShare      // share commitments, at most maxOrphanShares
	at     time.Time
}

// orphanShare is a share commitment with the epoch its reveal named.
type orphanShare struct {
	share *pb.Share
	epoch uint64
}

type orphanCommitment struct {
	com    *pb.Commitment
	comCID cid.Cid
	comAt  time.Time
	from   peer.ID
}

// maxOrphanSenders bounds the commitments held for one unknown challenge,
// so a third peer cannot crowd out the target's.
const maxOrphanSenders = 4

// maxTracked bounds the challenges a node follows at once.
const maxTracked = 1 << 14

// legitimate returns why a valid challenge is not one this node acts on,
// or nil. The sender must rank among the two scheduled challengers of the
// target for the epoch in this node's view (one spare for views that
// differ by a peer), send at most one challenge of that target per epoch,
// and ask for exactly the workload, openings and deadline the planner gives
// for the target's claim. So nobody can make a node prove, or verify, a
// challenge sized for another device, pick a target's verifiers by
// grinding nonces, or add passes to a friend's record at will.
func (tk *tracker) legitimate(ch *pb.Challenge, key string, from peer.ID, at time.Time) error {
	target := peer.ID(ch.GetTarget())
	claim, ok := tk.claims.claimOf(target)
	if !ok {
		return errors.New("no claim known for the target")
	}
	ranked := challenge.ChallengerRanking(ch.GetEpoch(), target, tk.earned.judges(tk.claims.livePeers(at), ch.GetEpoch()))
	_, own := tk.secrets[key] // issued here, on this node's view at the epoch's start
	if !own && !slices.Contains(ranked[:min(2, len(ranked))], from) {
		return errors.New("sender is not a scheduled challenger of the target this epoch")
	}
	slot := fmt.Sprintf("%s/%d/%s", target, ch.GetEpoch(), from)
	if r := ch.GetRetryOf(); len(r) > 0 {
		if err := tk.legitimateRetry(ch, r, from, target); err != nil {
			return err
		}
		slot += "/retry"
	}
	if prev, dup := tk.slots[slot]; dup && !own {
		// Two different challenges of one target from one challenger in an
		// epoch: nodes may have seen them in different orders, so neither
		// can be judged fairly. Void the one being followed.
		if t, ok := tk.tracked[prev.key]; ok && !t.settled() {
			t.advance(settled)
			tk.metrics.void.WithLabelValues("duplicate").Inc()
			tk.voids.add(t, "duplicate", []peer.ID{from})
			tk.log.Info("challenge void: its challenger sent two in one epoch", "challenger", shortID(from), "target", shortID(target))
		}
		return errors.New("sender already challenged the target this epoch")
	}
	plan, err := tk.planner.Plan(claim, ch.GetWorkload())
	if err != nil {
		return fmt.Errorf("no plan for the target's claim: %w", err)
	}
	if !plan.Matches(ch) {
		return errors.New("workload, openings or deadline differ from the plan for the target's claim")
	}
	if len(tk.tracked) >= maxTracked {
		return errors.New("too many challenges in flight")
	}
	tk.slots[slot] = slotUse{epoch: ch.GetEpoch(), key: key}
	return nil
}

// retryOf returns the string form of ch's retry_of CID, "" for a first
// try (or one that does not parse: the validator already rejected those).
func retryOf(ch *pb.Challenge) string {
	if len(ch.GetRetryOf()) == 0 {
		return ""
	}
	c, err := cid.Cast(ch.GetRetryOf())
	if err != nil {
		return ""
	}
	return c.String()
}

// legitimateRetry checks a retry (a challenge with retry_of) against the
// challenge it retries, when this node saw that one: the same challenger,
// target and epoch, not itself a retry, and not answered in time on this
// node's clock. A retry of a challenge this node never saw (lost, or sent
// before it joined) is taken on trust: it costs the target at most one
// extra challenge per challenger and epoch (the retry slot), and a retry
// of nothing forgives nothing.
func (tk *tracker) legitimateRetry(ch *pb.Challenge, retryOf []byte, from, target peer.ID) error {
	rc, err := cid.Cast(retryOf)
	if err != nil {
		return fmt.Errorf("retry_of: %w", err)
	}
	orig, ok := tk.tracked[rc.KeyString()]
	if !ok {
		return nil
	}
	switch {
	case orig.challenger != from || orig.target != target || orig.ch.GetEpoch() != ch.GetEpoch():
		return errors.New("retry of another challenger's, target's or epoch's challenge")
	case len(orig.ch.GetRetryOf()) > 0:
		return errors.New("retry of a retry")
	case orig.answeredInTime():
		return errors.New("retry of a challenge answered in time")
	}
	return nil
}

func (tk *tracker) onChallenge(from peer.ID, d decoded, at time.Time) {
	ch := d.msg.(*pb.Challenge)
	key := d.cid.KeyString()
	if _, dup := tk.tracked[key]; dup {
		return
	}
	if tk.awaitClaim(from, d, at) {
		return // judged once the sender's claim is in (claimFetched)
	}
	if err := tk.legitimate(ch, key, from, at); err != nil {
		tk.metrics.ignored.Inc()
		tk.log.Debug("challenge ignored", "challenge", d.cid, "from", shortID(from), "reason", err)
		return
	}
	target := peer.ID(ch.GetTarget())
	if p, ok := tk.claims.peers[target]; ok && len(ch.GetRetryOf()) == 0 {
		p.lastChallenged = max(p.lastChallenged, int64(min(ch.GetEpoch(), math.MaxInt64)))
	}
	t := &tracked{ch: ch, cid: d.cid, target: target, challenger: from, receivedAt: at}
	t.verifiers = challenge.VerifiersFor(ch.GetEpoch(), target, from, tk.earned.judges(tk.claims.livePeers(at), ch.GetEpoch()), tk.cfg.Challenge.Verifiers)
	t.verifier = slices.Contains(t.verifiers, tk.id)
	tk.slotsSeen.note(ch.GetEpoch(), "", t.verifiers)
	tk.tracked[key] = t
	if target == tk.id {
		tk.proofs.add(ch, d.cid, at)
		select {
		case tk.proveQ <- proveJob{ch: ch, cid: d.cid, judges: append(slices.Clone(t.verifiers), from), at: at}:
		default:
			tk.metrics.droppedJobs.Inc()
			tk.log.Warn("prove queue full, challenge dropped", "challenge", d.cid)
		}
	}
	if t.verifier {
		deadline := time.Duration(ch.GetDeadlineMs()) * time.Millisecond
		tk.ev.after(time.Until(at.Add(2*deadline+time.Second)), func() { tk.finalize(t) })
		if target != tk.id {
			tk.publishShare(t)
		}
	}
	if o, ok := tk.orphans[key]; ok {
		delete(tk.orphans, key)
		for _, sh := range o.shares {
			if tk.epochMatches(t, p2p.TopicReveals, sh.epoch, peer.ID(sh.share.GetVerifier())) {
				tk.noteShare(t, peer.ID(sh.share.GetVerifier()), sh.share, o.at)
			}
		}
		for _, c := range o.coms {
			tk.acceptCommitment(t, c.from, c.com, c.comCID, c.comAt)
		}
	}
}

func (tk *tracker) onCommitment(from peer.ID, d decoded, at time.Time) {
	com := d.msg.(*pb.Commitment)
	key := string(com.GetChallengeCid())
	if t, ok := tk.tracked[key]; ok {
		tk.acceptCommitment(t, from, com, d.cid, at)
		return
	}
	o := tk.orphan(key, at)
	if len(o.coms) < maxOrphanSenders && !slices.ContainsFunc(o.coms, func(c orphanCommitment) bool { return c.from == from }) {
		o.coms = append(o.coms, orphanCommitment{com: com, comCID: d.cid, comAt: at, from: from})
	}
}

func (tk *tracker) onOpening(from peer.ID, d decoded, at time.Time) {
	// Openings follow the reveal, which follows the commitment: one for a
	// challenge this node does not follow is not held (they are large).
	op := d.msg.(*pb.Opening)
	if t, ok := tk.tracked[string(op.GetChallengeCid())]; ok && tk.epochMatches(t, p2p.TopicOpenings, op.GetEpoch(), from) {
		tk.acceptOpening(t, from, op, d.cid)
	}
}

// epochMatches reports whether e, the epoch a message about t's challenge
// names, is the challenge's. The validator ignores one that is not when
// it accepted the challenge first; one that came before the challenge
// (or by a direct stream) is dropped here and counted.
func (tk *tracker) epochMatches(t *tracked, topic string, e uint64, from peer.ID) bool {
	if e == t.ch.GetEpoch() {
		return true
	}
	tk.metrics.epochMismatch.WithLabelValues(topic).Inc()
	tk.log.Info("message names another epoch than its challenge's", "topic", topic, "from", shortID(from), "epoch", e, "challenge_epoch", t.ch.GetEpoch(), "challenge", t.cid)
	return false
}

func (tk *tracker) orphan(key string, at time.Time) *orphan {
	o, ok := tk.orphans[key]
	if !ok {
		if len(tk.orphans) >= 4096 {
			return &orphan{} // full: drop it
		}
		o = &orphan{at: at}
		tk.orphans[key] = o
	}
	return o
}

// acceptCommitment takes a signed commitment of t's target (the validator
// checked the signature), delivered by from: the target itself, or a peer
// forwarding it. The first one counts, timed on this node's clock; a second,
// different one is equivocation (onEquivocation). A verifier hands the first
// to the challenger directly, so a target that leaves the challenger out
// cannot keep the secret unrevealed and the challenge void.
func (tk *tracker) acceptCommitment(t *tracked, from peer.ID, com *pb.Commitment, comCID cid.Cid, at time.Time) {
	if peer.ID(com.GetProver()) != t.target {
		return // only the target's commitments count
	}
	if !tk.epochMatches(t, p2p.TopicCommitments, com.GetEpoch(), from) {
		return
	}
	if t.com != nil {
		if !t.comCID.Equals(comCID) && t.equivocation == nil {
			t.equivocation, t.equivocationCID = com, comCID
			tk.onEquivocation(t, com)
		}
		return
	}
	if v := tk.sharesComplete(t, com, at); v != "" {
		// It leaves out a share the target had time to get: sampled
		// without that verifier's secret, the target (with its challenger,
		// perhaps) may have known every one and ground its root. Not an
		// answer.
		tk.metrics.ignored.Inc()
		tk.log.Info("commitment ignored: it omits a verifier's share", "target", shortID(t.target), "verifier", shortID(v), "listed", len(com.GetShares()), "challenge", t.cid)
		return
	}
	t.com, t.comCID, t.comAt = com, comCID, at
	tk.revealShare(t)
	if own, ok := tk.secrets[t.cid.KeyString()]; ok && t.challenger == tk.id {
		// The target has committed: reveal the opening secret, naming the
		// commitment it opens.
		delete(tk.secrets, t.cid.KeyString())
		b, err := challenge.Marshal(com)
		if err != nil {
			tk.log.Error("encode commitment", "err", err)
			return
		}
		t.revealedCom = comCID
		// The target gets it directly too, as it got the challenge.
		tk.gossip.publishTo(p2p.TopicReveals, &pb.Reveal{ChallengeCid: t.cid.Bytes(), Challenger: []byte(tk.id), Secret: own.secret, Commitment: b, Epoch: t.ch.GetEpoch()},
			deadlineOf(t.ch), t.target)
	} else if t.verifier && from != t.challenger && t.challenger != tk.id {
		tk.forwardCommitment(com, t.challenger)
	}
	tk.tryVerify(t)
}

func (tk *tracker) acceptOpening(t *tracked, from peer.ID, op *pb.Opening, opCID cid.Cid) {
	if from != t.target || t.op != nil {
		return
	}
	t.op, t.opCID = op, opCID
	tk.heldOpenings += openingBytes(op)
	if t.truthKnown || (!t.verifier && tk.heldOpenings > maxHeldOpeningBytes) {
		tk.slimOpening(t)
	}
	tk.tryVerify(t)
	tk.tryRecheck(t)
	tk.tryAudit(t)
}

// maxHeldOpeningBytes bounds the rows of the openings a node holds for
// challenges it does not verify (for a re-check, should a verdict be
// disputed): past it, an opening's rows are dropped on arrival. Its own
// verifications' openings are always held, until verified.
const maxHeldOpeningBytes = 256 << 20

// openingBytes returns the memory op's rows take, about.
func openingBytes(op *pb.Opening) int {
	b := 0
	for _, r := range op.GetRows() {
		b += len(r.GetValues()) + 32*len(r.GetProof()) + 64
	}
	return b
}

// slimOpening drops the rows of t's opening once nothing needs them: the
// truth of t is known (this node verified or re-checked it), or the
// budget of held openings is spent. The opening's header stays, so t
// still counts as opened.
func (tk *tracker) slimOpening(t *tracked) {
	if t.op == nil || t.slim {
		return
	}
	tk.heldOpenings -= openingBytes(t.op)
	t.op = &pb.Opening{ChallengeCid: t.op.GetChallengeCid(), CommitmentCid: t.op.GetCommitmentCid(), Prover: t.op.GetProver(), Epoch: t.op.GetEpoch()}
	t.slim = true
}

// onReveal takes a challenger's secret: this node opens its own proof
// with it, or verifies the target's opening. The reveal names the
// commitment it opens (the challenger's first from the target); a node that
// had none takes it, timed from now, and one that had another has found
// equivocation.
func (tk *tracker) onReveal(from peer.ID, d decoded, at time.Time) {
	r := d.msg.(*pb.Reveal)
	if r.GetShare() != nil {
		tk.onShare(from, r, at)
		return
	}
	t, ok := tk.tracked[string(r.GetChallengeCid())]
	if !ok || from != t.challenger || t.secret != nil || !tk.epochMatches(t, p2p.TopicReveals, r.GetEpoch(), from) {
		return
	}
	if string(challenge.RevealHash(r.GetSecret())) != string(t.ch.GetRevealHash()) {
		tk.log.Info("reveal does not match its challenge", "challenger", shortID(from), "challenge", t.cid)
		return
	}
	rc, err := challenge.RevealedCommitment(r)
	if err != nil || peer.ID(rc.Commitment.GetProver()) != t.target {
		tk.log.Info("reveal names no commitment of its target", "challenger", shortID(from), "challenge", t.cid)
		return
	}
	t.secret, t.revealAt, t.revealedCom = r.GetSecret(), at, rc.CID
	tk.afterReveal(t, from, rc, at)
}

// afterReveal carries on with t once a secret (the challenger's, or a
// verifier's share) was revealed at at with the commitment rc it opens:
// the commitment is taken (or found to be a second one), and the target
// opens, the verifiers verify, the others re-check or audit as their turn
// comes.
func (tk *tracker) afterReveal(t *tracked, from peer.ID, rc challenge.Revealed, at time.Time) {
	if at.After(t.lastRevealAt) {
		t.lastRevealAt = at
	}
	if t.target != tk.id {
		tk.acceptCommitment(t, from, rc.Commitment, rc.CID, at)
	}
	if t.target == tk.id {
		tk.open(t)
	}
	tk.tryVerify(t)
	tk.tryRecheck(t)
	tk.tryAudit(t)
}
