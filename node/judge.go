package node

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// MaxChallengerVoids is how many challenges a challenger may void by a
// missing or late reveal, in one node's view, before that node flags it
// (FlagVoids). Each void already contradicts the challenger like a wrong
// verdict; the flag makes a challenger that keeps doing it visible to
// operators. An honest challenger voids only when its reveal is lost or
// delayed past twice the deadline: none did in the devnet runs of
// docs/adversaries.md.
const MaxChallengerVoids = 3

// FlagVoids marks a peer that voided more than MaxChallengerVoids of the
// challenges it issued by not revealing its secret in time.
const FlagVoids = "voids: challenges voided by this challenger's missing reveal"

// noteVoid counts a void caused by challenger and flags it past
// MaxChallengerVoids.
func (tk *tracker) noteVoid(challenger peer.ID) {
	p, ok := tk.claims.peers[challenger]
	if !ok {
		return
	}
	p.voids++
	if p.voids > MaxChallengerVoids && !slices.Contains(p.flags, FlagVoids) {
		p.flags = append(slices.Clip(p.flags), FlagVoids)
		tk.metrics.flagged.WithLabelValues("voids").Inc()
		tk.log.Info("challenger flagged: it voids its challenges", "challenger", shortID(challenger), "voids", p.voids)
	}
}

// forwardCommitment hands a commitment to peer to directly. The challenger
// usually has it already (from the target, who sends it there too), and
// then refuses the copy as a replay.
func (tk *tracker) forwardCommitment(com *pb.Commitment, to peer.ID) {
	b, err := challenge.Marshal(com)
	if err != nil {
		return
	}
	tk.wg.Add(1)
	go func() {
		defer tk.wg.Done()
		tk.gossip.sendDirect(p2p.TopicCommitments, b, to, 5*time.Second)
	}()
}

// onEquivocation handles a target's second signed commitment to one
// challenge, other than t.com: both carry the target's signature, so
// together they prove it committed to two roots — the move that lets a
// prover show the challenger one root and, once the secret is out, grind
// another for the verifiers. A verifier attests WRONG_ANSWER, whatever
// either opening shows (judgeEquivocation); a verifier also publishes the
// second commitment, so that every peer following the challenge (the
// reveal carries the first) sees both. Where it was gossiped already, the
// local validator refuses the copy as a replay, and nothing is sent.
func (tk *tracker) onEquivocation(t *tracked, second *pb.Commitment) {
	tk.metrics.equivocations.Inc()
	tk.log.Info("equivocation: the target signed two commitments to one challenge", "target", shortID(t.target), "challenge", t.cid)
	if !t.verifier {
		return
	}
	tk.judgeEquivocation(t)
	if b, err := challenge.Marshal(second); err == nil {
		tk.wg.Add(1)
		go func() {
			defer tk.wg.Done()
			_ = tk.host.Publish(tk.ctx, tk.gossip.topic(p2p.TopicCommitments), b) // a replay when gossiped already
		}()
	}
}

// judgeEquivocation attests WRONG_ANSWER for t, whose target equivocated,
// once the secret is out: like every correctness verdict, it carries this
// node's check digest (challenge.CheckDigests), computed off the loop.
func (tk *tracker) judgeEquivocation(t *tracked) {
	if t.equivocation == nil || !t.verifier || t.settled() || t.checking() || t.secret == nil {
		return
	}
	t.advance(checking)
	ch, chCID, secret := t.ch, t.cid, t.secret
	digestOf := append(tk.possibleVerifiers(t), tk.id)
	tk.offLoop(func(ctx context.Context) {
		digests, err := challenge.CheckDigests(ctx, tk.cpu, ch, chCID, secret, digestOf)
		tk.ev.post(func() {
			t.advance(undecided)
			if err == nil && t.digests == nil {
				t.digests = digests
			}
			if !t.settled() {
				tk.attest(t, pb.Verdict_VERDICT_WRONG_ANSWER, max(t.comAt.Sub(t.receivedAt), 0), 1, 0, "equivocation: two signed commitments to one challenge")
				tk.learnTruth(t, pb.Verdict_VERDICT_WRONG_ANSWER)
			}
		})
	})
}

// busyOverlap returns how much of t's latency, on this node's clock, its
// target spent finishing an earlier challenge of its own: a prover answers
// one challenge at a time, so when two challengers pick the same target at
// once (views of the live peers that differ, a retry meeting a fresh
// challenge) the second answer waits for the first, and that wait is not
// the device's slowness. Only an earlier challenge u that arrived here
// before t, whose commitment came before t's, in time, and was verified
// correct (excuses) may excuse waiting, and by no more than u's
// anticipated duration at the target's claimed rate: an unverified or
// wrong commitment, however cheap, excuses nothing (a prover posting junk
// to one challenge would otherwise have the next, or the retry it was
// late on, timed at near zero). Only challenges of the same target count,
// so a device shared by two identities gains nothing.
func (tk *tracker) busyOverlap(t *tracked) time.Duration {
	var excused time.Duration
	for _, u := range tk.tracked {
		if u == t || u.target != t.target || u.com == nil || !u.receivedAt.Before(t.receivedAt) || !u.comAt.Before(t.comAt) {
			continue
		}
		if !tk.excuses(u) {
			continue
		}
		wait := min(u.comAt.Sub(t.receivedAt), tk.anticipated(u))
		excused = max(excused, wait)
	}
	return min(max(excused, 0), max(t.comAt.Sub(t.receivedAt), 0))
}

// excuses reports whether u's answer came in time and was verified
// correct: by this node (its verification or re-check), or else by the
// verifiers in good standing (application score ≥ 0) heard so far, at
// least one of them and none saying otherwise.
func (tk *tracker) excuses(u *tracked) bool {
	if !u.answeredInTime() || u.equivocation != nil {
		return false
	}
	if u.truthKnown {
		return u.truth == pb.Verdict_VERDICT_PASS
	}
	passes := 0
	for id, h := range u.atts {
		if tk.app.score(id) < 0 {
			continue
		}
		if h.v != pb.Verdict_VERDICT_PASS {
			return false
		}
		passes++
	}
	return passes > 0
}

// anticipated returns how long t's workload takes at its target's claimed
// rate (challenge.Plan.Anticipated), 0 when it cannot be planned.
func (tk *tracker) anticipated(t *tracked) time.Duration {
	claim, ok := tk.claims.claimOf(t.target)
	if !ok {
		return 0
	}
	pl, err := tk.planner.Plan(claim, t.ch.GetWorkload())
	if err != nil {
		return 0
	}
	return pl.Anticipated
}

// heardFrom reports whether target showed this node it was there after
// since: its claim was heard since, or its gossipsub traffic reached this
// node since (p2p.Host.LastRPC). A router ignores every message of a peer
// it graylists, claims included, but its RPCs still arrive, so a cheater
// pushed out of this node's view, or a prover keeping quiet after a
// challenge it cannot answer (two identities on one device), is still
// heard from while it takes part in gossip at all. A partitioned or
// restarting peer sends nothing. Its connection alone is no evidence: one
// whose link went down stays "connected" until the muxer's keepalive
// gives up, tens of seconds in which the first challenges of a partition
// were attested NO_ANSWER (TestPartitionHeals failed on CI so).
func (tk *tracker) heardFrom(target peer.ID, since time.Time) bool {
	if p, ok := tk.claims.peers[target]; ok && p.seen.After(since) {
		return true
	}
	return tk.host.LastRPC(target).After(since)
}

// finalize attests NO_ANSWER for a challenge whose answer never came.
func (tk *tracker) finalize(t *tracked) {
	if t.settled() || t.checking() {
		return // attested, or the answer came and is being checked
	}
	missing := t.missingShares(t.com)
	if t.com != nil && t.answeredInTime() && (t.secret == nil || len(missing) > 0 || (t.op == nil && time.Since(t.lastRevealAt) < openGrace)) {
		// The target committed in time (this node handed the commitment to
		// the challenger too) but the challenger's secret, or the share of
		// a verifier the commitment lists, reached this node late or never:
		// the target could not open, or (when its opening is here: the
		// reveal reached it but not this node) this node cannot check it.
		// Either way the fault is whoever withheld, and each is
		// contradicted here as a judge who failed its duty. A commitment
		// after the deadline voids nothing: the target is late.
		tk.log.Info("challenge void: a secret or share was not revealed in time", "challenge", t.cid, "challenger", shortID(t.challenger),
			"challenger_revealed", t.secret != nil, "shares_missing", len(missing))
		tk.metrics.void.WithLabelValues("reveal").Inc()
		t.advance(settled)
		var culprits []peer.ID
		if t.secret == nil && t.challenger != tk.id {
			tk.recordCheck(t, t.challenger, false)
			tk.noteVoid(t.challenger)
			culprits = append(culprits, t.challenger)
		}
		for _, v := range missing {
			if v != tk.id {
				tk.recordCheck(t, v, false)
				culprits = append(culprits, v)
			}
		}
		tk.voids.add(t, "reveal", culprits)
		return
	}
	latency := time.Since(t.receivedAt)
	if t.com != nil {
		latency = max(t.comAt.Sub(t.receivedAt), 0)
	}
	if v, ok := tk.judging.unchecked(t.target); ok {
		tk.attest(t, v, latency, 0, 1, "unchecked") // ADVERSARY
		return
	}
	if t.com != nil {
		// The commitment came; the opening was due by this finalize.
		if !tk.withholdTiming(t, time.Now()) {
			tk.attest(t, pb.Verdict_VERDICT_NO_ANSWER, latency, 1, 0, "no complete answer before the deadline: "+t.answerState())
		}
		return
	}
	// Nothing at all from the target: was it there? Wait for the next
	// epoch's claims. A target heard from after the challenge arrived (it
	// re-announces its claim every epoch) did not answer; one silent all
	// along was unreachable — a partition or a restart, not a cheat.
	if t.claimWait {
		return
	}
	t.claimWait = true
	e := tk.clock.At(time.Now())
	tk.ev.after(time.Until(tk.clock.Start(e+1).Add(tk.clock.Length/challenge.ClaimSpread+2*time.Second)), func() {
		if t.settled() {
			return
		}
		// Heard after the deadline, not merely after the challenge: a
		// target whose last traffic crossed a cut just after this node
		// received the challenge was not there to answer it (CI saw
		// TestPartitionHeals keep two or three such misses per side). One
		// heard after its deadline passed was reachable for the whole time
		// it had to commit, and a silent cheater still gossips then.
		if tk.heardFrom(t.target, t.receivedAt.Add(deadlineOf(t.ch))) {
			if !tk.withholdTiming(t, t.receivedAt.Add(deadlineOf(t.ch))) {
				tk.attest(t, pb.Verdict_VERDICT_NO_ANSWER, latency, 1, 0, "no answer from a reachable target")
			}
			return
		}
		tk.attest(t, pb.Verdict_VERDICT_UNREACHABLE, latency, 0, 0, "target not heard from since the challenge")
	})
}

func (tk *tracker) attest(t *tracked, v pb.Verdict, latency time.Duration, deviation, accuracy float64, reason string) {
	t.advance(settled)
	a := &pb.Attestation{
		ChallengeCid: t.cid.Bytes(), Target: []byte(t.target), Verifier: []byte(tk.id), Epoch: t.ch.GetEpoch(),
		Verdict: v, LatencyMs: uint32(min(latency.Milliseconds(), math.MaxUint32)), DeadlineMs: t.ch.GetDeadlineMs(),
		ScoreDeviation: deviation, DataAccuracy: accuracy, IssuedUnixMs: time.Now().UnixMilli(),
		ProverSmClockMhz: t.com.GetSmClockMhz(), ProverSmClockMaxMhz: t.com.GetSmClockMaxMhz(), ProverTemperatureC: t.com.GetTemperatureC(),
	}
	if _, known := correct(v); known {
		a.CheckDigest = t.digests[tk.id] // nil when this node did not verify (an adversary) or the workload has none
	}
	if v != pb.Verdict_VERDICT_PASS {
		a.Reason = challenge.AttestationReason(reason)
		a.Evidence = evidenceOf(t)
	}
	tk.metrics.attested.WithLabelValues(verdictName(v)).Inc()
	tk.summary.count(&tk.summary.given, verdictName(v))
	tk.stats.bump(func(s *Stats) { s.Attested++ })
	if v == pb.Verdict_VERDICT_PASS && !t.untimed {
		st, _ := tk.claims.checkProofSpeed(t, latency)
		tk.book.SetOverclaimed(t.target.String(), st.Flagged)
	}
	lvl := slog.LevelDebug
	if v != pb.Verdict_VERDICT_PASS {
		lvl = slog.LevelInfo
	}
	tk.log.Log(tk.ctx, lvl, "attestation", "target", shortID(t.target), "verdict", verdictName(v),
		"latency_ms", latency.Milliseconds(), "deadline_ms", t.ch.GetDeadlineMs(), "accuracy", accuracy, "reason", reason)
	tk.gossip.publish(p2p.TopicAttestation, a)
}

// possibleVerifiers are the peers whose attestations of t count: its
// verifiers, and the next two of the ranking in this node's present view —
// views of the peer set can differ by a peer or two between nodes.
func (tk *tracker) possibleVerifiers(t *tracked) []peer.ID {
	wide := challenge.VerifiersFor(t.ch.GetEpoch(), t.target, t.challenger, tk.earned.judges(tk.claims.livePeers(time.Now()), t.ch.GetEpoch()), tk.cfg.Challenge.Verifiers+2)
	for _, v := range t.verifiers {
		if !slices.Contains(wide, v) {
			wide = append(wide, v)
		}
	}
	return wide
}

// attestationFor returns the followed challenge that attestation a from
// verifier from is about, or why it counts for none: unknown_challenge,
// mismatch (another target, epoch or deadline than the challenge's),
// withheld_share (from withheld the share the target's commitment lists:
// the challenge is settled here and from's share never came, so from
// made the target unable to open and may not judge it) or not_verifier
// (from is not among possibleVerifiers). Loop goroutine only.
func (tk *tracker) attestationFor(from peer.ID, a *pb.Attestation) (*tracked, string) {
	t, ok := tk.tracked[string(a.GetChallengeCid())]
	switch {
	case !ok:
		return nil, "unknown_challenge"
	case peer.ID(a.GetTarget()) != t.target || a.GetEpoch() != t.ch.GetEpoch() || a.GetDeadlineMs() != t.ch.GetDeadlineMs():
		return nil, "mismatch"
	case t.settled() && t.com != nil && slices.Contains(t.missingShares(t.com), from):
		// Without this, the withholder's own NO_ANSWER was the only
		// verdict on a challenge every honest verifier voided, and it
		// counted against the target (CI, TestShareWithholderFramesNobody:
		// 8 of 26 honest challenges failed, all on one verifier's word).
		return nil, "withheld_share"
	case !slices.Contains(tk.possibleVerifiers(t), from):
		return nil, "not_verifier"
	}
	return t, ""
}

func (tk *tracker) onAttestation(from peer.ID, d decoded, at time.Time) {
	a := d.msg.(*pb.Attestation)
	t, reason := tk.attestationFor(from, a)
	if t == nil {
		// The validator ignored it when it knew this already (useless);
		// the node's view may have changed since.
		tk.log.Debug("attestation dropped", "from", shortID(from), "reason", reason)
		return
	}
	err := tk.book.Record(scoring.Attestation{
		Challenge: t.cid.String(), Target: t.target.String(), Verifier: from.String(), Epoch: a.GetEpoch(),
		Verdict: verdictName(a.GetVerdict()), LatencyMS: float64(a.GetLatencyMs()), DeadlineMS: float64(a.GetDeadlineMs()),
		Deviation: a.GetScoreDeviation(), Accuracy: a.GetDataAccuracy(),
		ClockMHz: a.GetProverSmClockMhz(), MaxClockMHz: a.GetProverSmClockMaxMhz(), TemperatureC: a.GetProverTemperatureC(),
		RetryOf: retryOf(t.ch), Reason: a.GetReason(), Evidence: evidenceStrings(a.GetEvidence()),
	})
	tk.noteAttestation(t, from, heardVerdict{v: a.GetVerdict(), digest: a.GetCheckDigest()})
	if r := tk.proofs.get(t.cid); r != nil {
		if _, dup := r.Verdicts[from.String()]; !dup {
			tk.summary.count(&tk.summary.received, verdictName(a.GetVerdict()))
		}
		r.Verdicts[from.String()] = verdictName(a.GetVerdict())
		if a.GetReason() != "" && len(r.Reasons) < 16 {
			if r.Reasons == nil {
				r.Reasons = map[string]string{}
			}
			r.Reasons[from.String()] = a.GetReason()
		}
	}
	tk.noteOutcome(t, from, a.GetVerdict())
	switch {
	case err == nil:
		tk.metrics.received.WithLabelValues(verdictName(a.GetVerdict())).Inc()
		tk.metrics.latency.Observe(float64(a.GetLatencyMs()) / 1000)
		tk.metrics.deviation.Observe(a.GetScoreDeviation())
		delay := at.Sub(time.UnixMilli(t.ch.GetIssuedUnixMs()))
		tk.metrics.attDelay.Observe(delay.Seconds())
		tk.delays.add(delay)
	case !errors.Is(err, scoring.ErrDuplicate):
		tk.log.Error("record attestation", "err", err)
	}
}

func verdictName(v pb.Verdict) string {
	switch v {
	case pb.Verdict_VERDICT_PASS:
		return scoring.VerdictPass
	case pb.Verdict_VERDICT_WRONG_ANSWER:
		return scoring.VerdictWrongAnswer
	case pb.Verdict_VERDICT_LATE:
		return scoring.VerdictLate
	case pb.Verdict_VERDICT_NO_ANSWER:
		return scoring.VerdictNoAnswer
	case pb.Verdict_VERDICT_BAD_PROOF:
		return scoring.VerdictBadProof
	case pb.Verdict_VERDICT_UNREACHABLE:
		return scoring.VerdictUnreachable
	}
	return "unknown"
}

// noteOutcome records in the target's peer entry the epoch of a failing
// or passing verdict from attester, when the attester is in good
// standing here (application score ≥ 0), for challenge.NeedsFollowUp. Unreachable
// verdicts say as much about the attester's links as about the target and
// are not noted. A failure also records its workload, which follow-ups
// repeat, and only a pass of that workload clears it.
func (tk *tracker) noteOutcome(t *tracked, attester peer.ID, v pb.Verdict) {
	p, ok := tk.claims.peers[t.target]
	if !ok || tk.app.score(attester) < 0 {
		return
	}
	e := int64(min(t.ch.GetEpoch(), math.MaxInt64))
	switch v {
	case pb.Verdict_VERDICT_PASS:
		// A pass clears a failure of its own workload only: a memory
		// failure is not cleared by a passing product.
		if p.lastFailed < 0 || t.ch.GetWorkload() == p.failedWorkload {
			p.lastPassed = max(p.lastPassed, e)
		}
		tk.earned.notePass(t.target, t.ch.GetEpoch())
	case pb.Verdict_VERDICT_LATE, pb.Verdict_VERDICT_NO_ANSWER, pb.Verdict_VERDICT_WRONG_ANSWER, pb.Verdict_VERDICT_BAD_PROOF:
		if e >= p.lastFailed {
			p.failedWorkload = t.ch.GetWorkload()
		}
		p.lastFailed = max(p.lastFailed, e)
	}
}

// evidenceOf lists the content IDs a verdict on t rests on: the target's
// commitment, then its opening, or for equivocation the two commitments
// (Attestation.evidence).
func evidenceOf(t *tracked) [][]byte {
	var out [][]byte
	for _, c := range []cid.Cid{t.comCID, t.opCID} {
		if t.equivocation != nil && c == t.opCID {
			c = t.equivocationCID
		}
		if c.Defined() {
			out = append(out, c.Bytes())
		}
	}
	return out
}

// evidenceStrings gives evidence CIDs (validated) in string form.
func evidenceStrings(ev [][]byte) []string {
	var out []string
	for _, b := range ev {
		if c, err := cid.Cast(b); err == nil {
			out = append(out, c.String())
		}
	}
	return out
}
