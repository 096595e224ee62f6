package node

import (
	"bytes"
	"context"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// App-score mapping (see docs/gossipsub-scoring.md): a peer earns up to
// AppCredit for its integrity score; once there is enough evidence to
// judge it, it loses AppPenalty per unit of its share of wrong outcomes
// (wrong answers, bad proofs, contradicted verdicts) above BadTolerance,
// and MissPenalty per unit of its share of missed answers above
// MissTolerance — misses can be a partition, so only a peer that mostly
// misses is pushed out, and one that missed a few can come back; a
// pre-trusted peer gets PreTrustedBonus so its peer exchange is accepted
// from the start. With half its outcomes wrong a peer scores −120, below
// p2p.GraylistThreshold (−80) even with the +13 the router's own counters
// can give; missing 60 % of its challenges scores −120.
const (
	AppCredit       = 10
	AppPenalty      = 400
	BadTolerance    = 0.2
	MissPenalty     = 600
	MissTolerance   = 0.4
	PreTrustedBonus = p2p.AcceptPXThreshold + 5
)

// MissRampEvidence is the evidence (two challenges attested by three
// verifiers in full standing) from which a peer's misses count in full;
// below it its missed share counts in proportion,
// Missing·min(1, Evidence/MissRampEvidence). One confirmed miss on a
// record of one challenge (a stall, and its retry, under a burst of
// load) then counts as 0.5, not 1 — out of the mesh but not graylisted —
// while a device that misses every challenge is graylisted by its second,
// and a longer record is weighed as it is. The 1,000-peer sim graylisted
// honest peers on exactly such short records (docs/sim.md).
const MissRampEvidence = 6

// AppScore maps a peer's standing to its gossipsub application score.
// Newcomers (too little evidence) score 0: neither credit nor blame.
func AppScore(pt scoring.PeerTrust, minEvidence float64) float64 {
	if pt.Overclaimed {
		return UnverifiableScore // its claim is shown false: as bad as one nobody can check
	}
	if pt.Evidence < minEvidence {
		return 0
	}
	wrong := pt.Bad - pt.Missing
	missing := pt.Missing * math.Min(1, pt.Evidence/MissRampEvidence)
	return AppCredit*pt.Score - AppPenalty*math.Max(0, wrong-BadTolerance) - MissPenalty*math.Max(0, missing-MissTolerance)
}

// UnverifiableScore is the application score of a peer whose claim no
// configured workload can be planned for (FlagUnverifiable): below
// p2p.GraylistThreshold, since a peer that cannot be challenged must not
// sit in the mesh on the strength of a claim nobody can check.
const UnverifiableScore = -100

// rollTrust runs the EigenTrust round for the epoch that starts, off the
// loop, and publishes the new app scores and score gauges.
func (tk *tracker) rollTrust(e uint64) {
	tk.wg.Add(1)
	go func() {
		defer tk.wg.Done()
		start := time.Now()
		v, err := tk.book.Roll(e)
		if err != nil {
			tk.log.Error("trust round", "epoch", e, "err", err)
			return
		}
		tk.app.set(v)
		tk.app.setGauges(v, tk.id, tk.host.Connected)
		tk.log.Debug("trust round", "epoch", e, "peers", len(v.Peers), "took", time.Since(start).Round(time.Microsecond))
	}()
}

// correct reports whether a verdict says the answer was right (in time or
// not), and whether it says anything about correctness at all.
func correct(v pb.Verdict) (ok, known bool) {
	switch v {
	case pb.Verdict_VERDICT_PASS, pb.Verdict_VERDICT_LATE:
		return true, true
	case pb.Verdict_VERDICT_WRONG_ANSWER, pb.Verdict_VERDICT_BAD_PROOF:
		return false, true
	}
	return false, false
}

// noteAttestation keeps another verifier's verdict on t and, once this node
// knows the truth of t (its own verification or a re-check), judges it.
// It asks for a re-check when verdicts disagree or, for a sample of
// challenges, at random.
func (tk *tracker) noteAttestation(t *tracked, from peer.ID, h heardVerdict) {
	if from == tk.id {
		return
	}
	if t.atts == nil {
		t.atts = map[peer.ID]heardVerdict{}
	}
	if _, dup := t.atts[from]; dup {
		return
	}
	t.atts[from] = h
	if t.truthKnown {
		tk.judge(t, from, h)
		return
	}
	v := h.v
	if t.verifier || t.recheckWanted {
		return // this node's own verification, or a re-check, will judge
	}
	if t.digests != nil {
		tk.auditDigest(t, from, h)
	} else {
		tk.tryAudit(t)
	}
	disagree := false
	for _, other := range t.atts {
		a, ka := correct(other.v)
		b, kb := correct(v)
		if ka && kb && a != b {
			disagree = true
		}
	}
	if (disagree || rand.Float64() < tk.cfg.Scoring.RecheckFraction) && tk.rechecks.take(t.ch.GetEpoch(), MaxRechecksPerEpoch) {
		t.recheckWanted = true
		tk.tryRecheck(t)
	}
}

// MaxAuditsPerEpoch bounds the check-digest audits (tryAudit) one node
// runs per epoch. An audit costs what a verifier spends on digests (a
// pass over B and a row per verifier for GEMM), less than a verification.
const MaxAuditsPerEpoch = 16

// tryAudit checks, off the loop, the check digests (challenge.CheckDigests)
// of the verifiers that attested a correctness verdict on t, where this
// node neither verifies nor re-checks t: once the challenger's secret is
// out, a digest depends only on the challenge, the secret and its verifier,
// not on the target's answer, so any peer can tell a verifier that
// attested without the arithmetic (a lazy verifier, a clique voting blind)
// from one that did it, for a fraction of a verification. Without audits
// only its co-verifiers and the occasional re-check contradicted a lazy
// verifier, in their own books alone, and the rest of its shard kept
// crediting it for its own passing proofs (three of the 1,000-peer sim's
// twenty ended above the graylist on the shard's mean score). A wrong or
// missing digest is recorded as a contradiction (scoring.Check, weight
// CheckContradict); a right one says nothing of the verdict, so it is not
// recorded. At most MaxAuditsPerEpoch a node per epoch.
func (tk *tracker) tryAudit(t *tracked) {
	if t.verifier || t.recheckWanted || t.truthKnown || t.auditing || t.digests != nil || t.secret == nil {
		return
	}
	auditable := false
	for _, h := range t.atts {
		_, known := correct(h.v)
		auditable = auditable || known
	}
	if !auditable || !tk.audits.take(t.ch.GetEpoch(), MaxAuditsPerEpoch) {
		return // nothing to audit yet, or no budget left
	}
	t.auditing = true
	ch, chCID, secret, ids := t.ch, t.cid, t.secret, tk.possibleVerifiers(t)
	tk.offLoop(func(ctx context.Context) {
		digests, err := challenge.CheckDigests(ctx, tk.cpu, ch, chCID, secret, ids)
		tk.ev.post(func() {
			t.auditing = false
			if err != nil || digests == nil || t.digests != nil {
				return
			}
			tk.metrics.audits.Inc()
			t.digests = digests
			ids := slices.Sorted(maps.Keys(t.atts))
			for _, id := range ids {
				tk.auditDigest(t, id, t.atts[id])
			}
		})
	})
}

// auditDigest records a contradiction of verifier when it attested a
// correctness verdict on t without the check digest this node computed for
// it (tryAudit). Once this node knows the truth of t, judge does instead.
func (tk *tracker) auditDigest(t *tracked, verifier peer.ID, h heardVerdict) {
	if t.truthKnown {
		return
	}
	if _, known := correct(h.v); !known {
		return
	}
	want, computed := t.digests[verifier]
	if !computed || want == nil || bytes.Equal(want, h.digest) {
		return
	}
	if tk.recordCheck(t, verifier, false) {
		tk.log.Info("verifier's check digest is wrong or missing: it did not recompute", "verifier", shortID(verifier), "target", shortID(t.target), "by", "audit")
	}
}

// recordCheck stores this node's judgement of verifier's attestation on t
// (scoring.Check) and counts it; it reports whether it was stored.
func (tk *tracker) recordCheck(t *tracked, verifier peer.ID, agree bool) bool {
	err := tk.book.RecordCheck(scoring.Check{Verifier: verifier.String(), Target: t.target.String(),
		Challenge: t.cid.String(), Epoch: t.ch.GetEpoch(), Agree: agree})
	if err != nil {
		tk.log.Error("record check", "err", err)
		return false
	}
	tk.metrics.checks.WithLabelValues(map[bool]string{true: "agree", false: "contradict"}[agree]).Inc()
	return true
}

// epochBudget is a number of operations allowed per epoch.
type epochBudget struct {
	epoch uint64
	left  int
}

// take uses one operation of epoch e's budget of max, if any is left.
func (b *epochBudget) take(e uint64, max int) bool {
	if b.epoch != e {
		b.epoch, b.left = e, max
	}
	if b.left == 0 {
		return false
	}
	b.left--
	return true
}

// MaxRechecksPerEpoch bounds the re-checks one node runs per epoch, so
// dissenting verifiers (new identities cost nothing) cannot make every
// node re-verify everything.
const MaxRechecksPerEpoch = 8

// judge records whether verifier's verdict agrees with the truth of t. A
// correctness verdict without the check digest this node computed for that
// verifier (challenge.CheckDigests) disagrees, whatever it says.
// Only correctness is judged.
func (tk *tracker) judge(t *tracked, verifier peer.ID, h heardVerdict) {
	v := h.v
	truthOK, _ := correct(t.truth)
	ok, known := correct(v)
	if !known {
		// Timing verdicts (late, no answer, unreachable) depend on when
		// each verifier got the commitment and the opening, which a prover
		// can stagger to frame honest verifiers: not judged.
		return
	}
	agree := ok == truthOK
	if want, computed := t.digests[verifier]; computed && want != nil && !bytes.Equal(want, h.digest) {
		// It attested a correctness verdict without the arithmetic that
		// verdict needs: right or wrong, it did not check.
		agree = false
		tk.log.Info("verifier's check digest is wrong or missing: it did not recompute", "verifier", shortID(verifier), "target", shortID(t.target))
	}
	if tk.recordCheck(t, verifier, agree) && !agree {
		tk.log.Info("verifier contradicted by this node's check", "verifier", shortID(verifier), "target", shortID(t.target),
			"its_verdict", verdictName(v), "truth", verdictName(t.truth))
	}
}

// learnTruth sets t's truth from this node's own verification or re-check
// and judges every verifier heard so far.
func (tk *tracker) learnTruth(t *tracked, v pb.Verdict) {
	if _, known := correct(v); !known || t.truthKnown {
		return
	}
	t.truth, t.truthKnown = v, true
	// Verified or re-checked: the opening's rows are no longer needed
	// (a verification in flight holds its own reference).
	tk.slimOpening(t)
	ids := make([]peer.ID, 0, len(t.atts))
	for id := range t.atts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		tk.judge(t, id, t.atts[id])
	}
}

// heardVerdict is what another verifier attested about a challenge: its
// verdict and check digest.
type heardVerdict struct {
	v      pb.Verdict
	digest []byte
}

// tryRecheck re-verifies t off the loop once its commitment, opening,
// secret and shares are all here.
func (tk *tracker) tryRecheck(t *tracked) {
	if !t.recheckWanted || t.rechecking || t.truthKnown || t.com == nil || t.op == nil || t.slim || t.secret == nil || !t.comCID.Equals(t.revealedCom) {
		return
	}
	if _, ok := t.revealedShares(t.com); !ok {
		return
	}
	t.rechecking = true
	tk.verifyOffLoop(t, func(res challenge.Result, err error) {
		t.rechecking = false
		if err != nil {
			return
		}
		tk.metrics.rechecks.Inc()
		tk.learnTruth(t, res.Verdict)
	})
}

// judges returns the peers of live that may challenge and verify in epoch
// e, split by earned trust (challenge.Pool): those this node has not graylisted (a
// graylisted peer's messages are dropped by every scoring router, so a
// challenge or attestation from it would be lost), the proven ones
// (earnedTrust.proven) apart. Views differ a little between nodes; legitimate()
// tolerates one spare challenger and verifiers are accepted from a
// slightly wider ranking.
func (et *earnedTrust) judges(live []peer.ID, e uint64) challenge.Pool {
	var out challenge.Pool
	for _, p := range live {
		if p != et.self && et.app.score(p) < p2p.GraylistThreshold {
			continue
		}
		if et.proven(p, e) {
			out.Proven = append(out.Proven, p)
		} else {
			out.Unproven = append(out.Unproven, p)
		}
	}
	return out
}

// earnedTrust is what this node knows of the peers' earned trust: who
// has passed a challenge, attested by a verifier in good standing, since
// when, and who is pre-trusted; it decides who may challenge and verify
// (judges). Loop goroutine only.
type earnedTrust struct {
	self peer.ID
	// app gives each peer's standing (its application score).
	app *appScores
	// firstPass is the epoch of each peer's earliest challenge that a
	// verifier in good standing attested a pass of, as heard here.
	firstPass map[peer.ID]uint64
	// preTrusted is [scoring] pretrusted.
	preTrusted map[peer.ID]bool
}

// newEarnedTrust returns self's earned trust, nothing heard yet, with
// the peers of preTrusted (peer IDs; any that do not decode are left
// out) trusted from genesis.
func newEarnedTrust(app *appScores, preTrusted []string) earnedTrust {
	et := earnedTrust{app: app, firstPass: map[peer.ID]uint64{}, preTrusted: map[peer.ID]bool{}}
	for _, s := range preTrusted {
		if id, err := peer.Decode(s); err == nil {
			et.preTrusted[id] = true
		}
	}
	return et
}

// notePass records a pass of a challenge of target in epoch e, attested
// by a verifier in good standing (noteOutcome).
func (et *earnedTrust) notePass(target peer.ID, e uint64) {
	if first, ok := et.firstPass[target]; !ok || e < first {
		et.firstPass[target] = e
	}
}

// restoreEarned rebuilds, on start, the earned trust a restarted node
// knew: each pass among the retained attestations of its score book, from
// a verifier in good standing (the trust vector restored before it),
// counts as heard again (notePass). Without it a restarted node would hold
// every peer unproven (pre-trusted ones aside) while the nodes that ran
// on do not, so its challenger and verifier rankings would differ from
// theirs wherever proven and unproven peers are both live: it would
// ignore its scheduled challengers' challenges, and take unproven
// identities for them. Passes older than the retention are not restored:
// a peer challenged as the schedule says has passes within it.
func (et *earnedTrust) restore(retained []scoring.Attestation) {
	for _, a := range retained {
		if !a.Pass() {
			continue
		}
		target, err := peer.Decode(a.Target)
		if err != nil {
			continue
		}
		if v, err := peer.Decode(a.Verifier); err != nil || et.app.score(v) < 0 {
			continue
		}
		et.notePass(target, a.Epoch)
	}
}

// proven reports whether p has earned trust by epoch e in this node's
// view: a verifier in good standing (application score ≥ 0) attested a
// pass of one of p's challenges of epoch e − challenge.ProvenLag or earlier, and p
// is in good standing itself (its application score is not negative: a
// peer whose record turns against it, a lazy verifier's false pass
// included, loses the slots with it). A pre-trusted peer ([scoring]
// pretrusted) is proven from genesis, so a network whose bootstrap
// operators are pre-trusted has proven judges from its first epoch.
//
// The test is coarse on purpose: every honest node hears the same
// attestations, so their views agree on it within challenge.ProvenLag, which a
// fine-grained score would not.
func (et *earnedTrust) proven(p peer.ID, e uint64) bool {
	if et.preTrusted[p] {
		return true
	}
	first, ok := et.firstPass[p]
	return ok && first+challenge.ProvenLag <= e && et.app.score(p) >= 0
}
