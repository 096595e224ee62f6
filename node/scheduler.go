package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// ownSecret is the opening secret of a challenge this node issued.
type ownSecret struct {
	secret []byte
	epoch  uint64
}

// slotUse records the challenge a challenger sent a target in an epoch.
type slotUse struct {
	epoch uint64
	key   string // challenge CID bytes
}

// onEpoch runs at the start of every epoch: re-announce the claim, forget
// old state, and schedule the challenges this node must issue.
func (tk *tracker) onEpoch(e uint64) {
	tk.ev.after(time.Until(tk.clock.Start(e+1)), func() { tk.onEpoch(e + 1) })
	now := time.Now()
	tk.metrics.epoch.Set(float64(e))
	if tk.startEpoch == nil {
		tk.startEpoch = &e
	}
	tk.rollTrust(e)
	tk.ev.after(challenge.ClaimOffset(tk.id, e, tk.clock.Length), tk.announce.publish)
	tk.expire(now)
	live := tk.claims.livePeers(now)
	if e > *tk.startEpoch {
		tk.logEpoch(e-1, len(live))
	}
	judges := tk.earned.judges(live, e)
	tk.metrics.peers.Set(float64(len(live)))
	// Shards take turns: each shard's slots are shifted by its share of
	// one slot, so the network's challenges are spread over the epoch.
	shard, shards := tk.shard, max(tk.cfg.P2P.Shards, 1)
	phase := time.Duration(float64(tk.clock.Length) * 0.8 / float64(max(len(live), 1)) * float64(shard) / float64(shards))
	for _, target := range live {
		c := challenge.ChallengerFor(e, target, judges)
		tk.slotsSeen.note(e, c, nil)
		if target == tk.id || c != tk.id {
			continue
		}
		// Below rate 1 the challenger draws from its own randomness, so
		// no prover can tell in advance in which epochs it is challenged
		// (a device shared by identities could otherwise take turns),
		// up to a bound on the gap between challenges.
		p := tk.claims.peers[target]
		followUp := challenge.NeedsFollowUp(p.lastFailed, p.lastPassed) && tk.app.score(target) >= p2p.GraylistThreshold
		if !followUp && !challenge.ChallengeDrawn(int64(e), p.lastChallenged, tk.cfg.Challenge.Rate, mrand.Float64()) {
			continue
		}
		if followUp {
			tk.metrics.followUps.Inc()
		}
		target := target
		at := tk.clock.Start(e).Add(challenge.SlotOffset(target, live, tk.clock.Length) + phase)
		if w := tk.cfg.Challenge.Waves; w > 0 {
			at = tk.clock.Start(e).Add(challenge.WaveOffset(e, target, w, tk.clock.Length))
		}
		tk.ev.after(time.Until(at), func() {
			if _, err := tk.issue(e, target); err != nil {
				tk.log.Debug("challenge not issued", "target", shortID(target), "err", err)
			}
		})
	}
}

// expire forgets challenges, orphans and peers too old to matter.
func (tk *tracker) expire(now time.Time) {
	// A challenge is kept three epochs past its own deadline (not the
	// protocol's 10-minute limit, which kept every opening of a busy
	// shard in memory for 20 minutes).
	for k, t := range tk.tracked {
		if now.Sub(t.receivedAt) > challenge.FollowEpochs*tk.clock.Length+2*time.Duration(t.ch.GetDeadlineMs())*time.Millisecond {
			tk.slimOpening(t)
			delete(tk.tracked, k)
		}
	}
	for k, s := range tk.secrets {
		if s.epoch+3 < tk.clock.At(now) {
			delete(tk.secrets, k)
		}
	}
	for k, u := range tk.slots {
		if u.epoch+3 < tk.clock.At(now) {
			delete(tk.slots, k)
		}
	}
	for p, e := range tk.claimAsked {
		if e+1 < tk.clock.At(now) {
			delete(tk.claimAsked, p)
		}
	}
	for k, o := range tk.orphans {
		if now.Sub(o.at) > 2*time.Minute {
			delete(tk.orphans, k)
		}
	}
	for id, p := range tk.claims.peers {
		if now.Sub(p.seen) > 10*time.Duration(tk.cfg.Challenge.PeerTTLEpochs)*tk.clock.Length {
			delete(tk.claims.peers, id)
		}
	}
}

// quietEpochs is how long a challenger may go without hearing a target's
// claim (re-announced every epoch) and still challenge it: a target it
// cannot hear probably cannot hear it either (a partition), and its
// misses would count against it. The target stays a live peer for
// [challenge] peer_ttl_epochs, so challenger and verifier assignments
// do not change while the network is split.
const quietEpochs = 2

// issue publishes a challenge of target sized from its latest claim, and
// sends it to target directly too (p2p.DirectProtocol). The
// workload rotates through the configured ones by epoch and target, skipping
// those the claim gives no rate for.
func (tk *tracker) issue(e uint64, target peer.ID) (cid.Cid, error) {
	return conductOf(tk.role).issue(tk, e, target)
}

// retryBackoff returns how long after a missed deadline a challenger
// retries: a random time in [epoch/16, epoch/6] (1.5–4 s for 24 s
// epochs), so the retry does not fall in the same burst of load or loss
// that the miss may have.
func (tk *tracker) retryBackoff() time.Duration {
	lo, hi := tk.clock.Length/16, tk.clock.Length/6
	return lo + time.Duration(mrand.Int64N(int64(hi-lo)+1))
}

// retryIfMissed issues one retry of this node's challenge key once its
// deadline has passed without a commitment in time on this node's clock:
// a missed deadline is retried, with back-off, before it counts
// (scoring.Book.Roll forgives a miss whose retry passed).
func (tk *tracker) retryIfMissed(e uint64, target peer.ID, key string) {
	t, ok := tk.tracked[key]
	if !ok || len(t.ch.GetRetryOf()) > 0 {
		return
	}
	if t.answeredInTime() {
		return
	}
	// Where many nodes share this process (poai-sim, poai devnet), a
	// challenger overloaded while it waited cannot tell a miss from the
	// shared backlog, every verifier there withholds its verdict
	// (withholdTiming), and a retry would only add a proof and its
	// verifications to the backlog: those retries fed the overload that
	// caused the misses. A lone node retries anyway, since verifiers on
	// other machines may have recorded the miss.
	if processLag.shared() && tk.overloaded(t.receivedAt, t.receivedAt.Add(deadlineOf(t.ch))) {
		tk.metrics.retriesSkipped.Inc()
		tk.log.Debug("retry not issued: this node was overloaded", "target", shortID(target))
		return
	}
	if _, err := tk.issueTry(e, target, t.cid); err != nil {
		tk.log.Debug("retry not issued", "target", shortID(target), "err", err)
	}
}

// issueTry issues a challenge of target, a retry of the challenge
// retryOf unless that is cid.Undef.
func (tk *tracker) issueTry(e uint64, target peer.ID, retryOf cid.Cid) (cid.Cid, error) {
	if tk.draining {
		return cid.Undef, ErrDraining
	}
	p, ok := tk.claims.peers[target]
	if !ok || tk.ctx.Err() != nil {
		return cid.Undef, errors.New("no claim known for the target")
	}
	if quiet := time.Since(p.seen); quiet > quietEpochs*tk.clock.Length {
		return cid.Undef, fmt.Errorf("no claim heard from the target for %v: it is probably unreachable, and a miss would blame it for the network", quiet.Round(time.Second))
	}
	slot := fmt.Sprintf("%s/%d/%s", target, e, tk.id)
	if retryOf.Defined() {
		slot += "/retry"
	}
	if _, done := tk.slots[slot]; done {
		return cid.Undef, fmt.Errorf("already challenged %s in epoch %d", target, e)
	}
	var plan challenge.Plan
	var err error
	start := int(e) + int(challenge.Rendezvous("poai/1/workload", []byte(target), tk.id)[0])
	if i := slices.Index(tk.workloads, p.failedWorkload); i >= 0 && challenge.NeedsFollowUp(p.lastFailed, p.lastPassed) {
		// A follow-up repeats the workload that failed: a device that
		// lies about one resource (memory, a second card) fails only the
		// workload that tests it, and on the rotation those failures
		// would stay a minority of its record.
		start = i
	}
	for i := range tk.workloads {
		if plan, err = tk.planner.Plan(p.claim, tk.workloads[(start+i)%len(tk.workloads)]); err == nil {
			break
		}
	}
	if err != nil {
		tk.log.Debug("no workload for claim", "target", shortID(target), "err", err)
		return cid.Undef, err
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return cid.Undef, fmt.Errorf("nonce: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return cid.Undef, fmt.Errorf("secret: %w", err)
	}
	ch := &pb.Challenge{
		Version: 1, Epoch: e, Challenger: []byte(tk.id), Target: []byte(target), Nonce: nonce,
		IssuedUnixMs: time.Now().UnixMilli(), ClaimCid: p.claimCID.Bytes(), RevealHash: challenge.RevealHash(secret),
	}
	if retryOf.Defined() {
		ch.RetryOf = retryOf.Bytes()
	}
	plan.Apply(ch)
	challenge.SetLLMWeights(ch, tk.clock.Genesis.Unix())
	_, chCID, err := challenge.MessageCID(ch)
	if err != nil {
		return cid.Undef, fmt.Errorf("encode challenge: %w", err)
	}
	tk.secrets[chCID.KeyString()] = ownSecret{secret: secret, epoch: e}
	tk.challenging.issued(ch, chCID, secret)
	tk.slots[slot] = slotUse{epoch: e, key: chCID.KeyString()}
	// Counted as issued only once this node's own validator has accepted
	// it: a challenge it refuses (an epoch out of range, limits) never
	// leaves the node, and publishThen logs why.
	tk.gossip.publishThen(p2p.TopicChallenges, ch, plan.Deadline, func() {
		tk.metrics.issued.Inc()
		if retryOf.Defined() {
			tk.metrics.retries.Inc()
		}
		tk.stats.bump(func(s *Stats) { s.Issued++ })
		tk.log.Debug("challenge issued", "target", shortID(target), "epoch", e, "workload", plan.Workload,
			"anticipated", plan.Anticipated, "deadline", plan.Deadline)
	}, target)
	if !retryOf.Defined() {
		key := chCID.KeyString()
		tk.ev.after(plan.Deadline+tk.retryBackoff(), func() { tk.retryIfMissed(e, target, key) })
	}
	return chCID, nil
}

// ChallengeOutcome says what ChallengeNow did.
type ChallengeOutcome struct {
	// CID is the challenge this node issued, when it is the target's
	// scheduled challenger this epoch.
	CID string `json:"challenge_cid,omitempty"`
	// Requested is true when this node is not, and asked the scheduled
	// challengers over gossip instead.
	Requested   bool     `json:"requested,omitempty"`
	Challengers []string `json:"scheduled_challengers,omitempty"`
	Epoch       uint64   `json:"epoch"`
}

// ChallengeNow brings forward this epoch's challenge of target. If this
// node is the target's scheduled challenger (first in the rendezvous
// ranking) it issues the challenge at once; otherwise it gossips a
// ChallengeRequest that the scheduled challenger honours. Either way at most
// one challenge per challenger per target per epoch is acted on, so nobody
// can multiply a target's work this way.
func (n *Node) ChallengeNow(target peer.ID) (ChallengeOutcome, error) {
	var (
		out ChallengeOutcome
		err error
	)
	ok := n.ev.snapshot(func() {
		now := time.Now()
		out.Epoch = n.clock.At(now)
		first := n.tk.scheduledChallengers(target, out.Epoch, now)
		for _, c := range first {
			out.Challengers = append(out.Challengers, c.String())
		}
		switch {
		case target == n.id:
			err = errors.New("a node cannot challenge itself")
		case len(first) == 0:
			err = fmt.Errorf("no claim known for %s", target)
		case first[0] == n.id:
			var c cid.Cid
			if _, done := n.tk.slots[fmt.Sprintf("%s/%d/%s", target, out.Epoch, n.id)]; done {
				err = fmt.Errorf("already challenged %s in epoch %d", target, out.Epoch)
				return
			}
			if c, err = n.tk.issue(out.Epoch, target); err == nil {
				out.CID = c.String()
			}
		default:
			out.Requested = true
			n.gossip.publish(p2p.TopicRequests, &pb.ChallengeRequest{Target: []byte(target), Requester: []byte(n.id), IssuedUnixMs: now.UnixMilli()})
		}
	})
	if !ok {
		return out, errors.New("node is closing")
	}
	return out, err
}

// scheduledChallengers returns the top two of target's challenger ranking
// for epoch e in this node's view, or nil when target has no known claim.
func (tk *tracker) scheduledChallengers(target peer.ID, e uint64, now time.Time) []peer.ID {
	if _, ok := tk.claims.peers[target]; !ok && target != tk.id {
		return nil
	}
	ranked := challenge.ChallengerRanking(e, target, tk.earned.judges(tk.claims.livePeers(now), e))
	return ranked[:min(2, len(ranked))]
}

// onRequest honours a request to challenge a target now, when this node is
// its scheduled challenger this epoch, has not challenged it yet, and the
// requester (never the target: the validator refuses that) is proven
// where any peer is, so that nobody can choose when its own device is
// tested, through a puppet identity either.
func (tk *tracker) onRequest(from peer.ID, d decoded, at time.Time) {
	r := d.msg.(*pb.ChallengeRequest)
	target := peer.ID(r.GetTarget())
	e := tk.clock.At(at)
	first := tk.scheduledChallengers(target, e, at)
	if target == tk.id || len(first) == 0 || first[0] != tk.id {
		return
	}
	if !tk.earned.proven(from, e) && len(tk.earned.judges(tk.claims.livePeers(at), e).Proven) > 0 {
		// The validator refuses a target's request of itself; an identity
		// made for the purpose (the target's own puppet) would do as well,
		// so only a peer with a passed challenge on record may ask — once
		// any has one (at genesis nobody has).
		tk.log.Debug("challenge request ignored: the requester has no passed challenge on record", "requester", shortID(from), "target", shortID(target))
		return
	}
	if _, done := tk.slots[fmt.Sprintf("%s/%d/%s", target, e, tk.id)]; done {
		return
	}
	if c, err := tk.issue(e, target); err == nil {
		tk.log.Info("challenge issued on request", "target", shortID(target), "requester", shortID(from), "challenge", c)
	}
}

// logEpoch writes epoch e's line at info: the live peers, the challenges
// this node issued and answered, its proofs that failed, the verdicts it
// gave as a verifier and those it received on its own proofs (by kind)
// since the last line, and its own integrity score in its book. An
// operator watching at info sees one line per epoch.
func (tk *tracker) logEpoch(e uint64, peers int) {
	now := tk.stats.get()
	d := Stats{Issued: now.Issued - tk.summary.last.Issued, Answered: now.Answered - tk.summary.last.Answered,
		ProveFailed: now.ProveFailed - tk.summary.last.ProveFailed, Attested: now.Attested - tk.summary.last.Attested}
	tk.log.Info("epoch", "epoch", e, "peers", peers, "issued", d.Issued, "answered", d.Answered, "prove_failed", d.ProveFailed,
		"verdicts_received", counted(tk.summary.received), "attested", d.Attested, "verdicts_given", counted(tk.summary.given),
		"own_score", tk.book.Score(tk.id.String()))
	tk.summary = epochSummary{last: now}
}

// count adds one verdict v to *m.
func (epochSummary) count(m *map[string]int, v string) {
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[v]++
}

// counted writes verdict counts as "fail=1 pass=3", by name.
func counted(m map[string]int) string {
	names := slices.Sorted(maps.Keys(m))
	out := make([]string, len(names))
	for i, v := range names {
		out[i] = fmt.Sprintf("%s=%d", v, m[v])
	}
	return strings.Join(out, " ")
}
