package challenge

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Scheduling: who challenges whom, who verifies, and when in the epoch.
// Pure functions of the epoch, peer IDs and each node's view of its live
// peers, so that every node with the same view computes the same schedule
// (docs/protocol.md §6); the node applies them to its view.

// Rendezvous returns SHA-256(tag || key || id), the weight of id for key in
// highest-random-weight (Rendezvous) hashing (Thaler and Ravishankar,
// "Using Name-Based Mappings to Increase Hit Rates", IEEE/ACM ToN 1998).
// Every peer with the same view computes the same ranking, and nobody can
// choose its Rank without choosing its peer ID before the key exists.
func Rendezvous(tag string, key []byte, id peer.ID) [32]byte {
	h := sha256.New()
	h.Write([]byte(tag))
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(key)))
	h.Write(l[:])
	h.Write(key)
	h.Write([]byte(id))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Rank orders candidates by descending Rendezvous weight for key, skipping
// the excluded peers.
func Rank(tag string, key []byte, candidates []peer.ID, exclude ...peer.ID) []peer.ID {
	type w struct {
		id peer.ID
		h  [32]byte
	}
	ws := make([]w, 0, len(candidates))
	for _, c := range candidates {
		if !slices.Contains(exclude, c) {
			ws = append(ws, w{c, Rendezvous(tag, key, c)})
		}
	}
	slices.SortFunc(ws, func(a, b w) int {
		for i := range a.h {
			if a.h[i] != b.h[i] {
				return int(b.h[i]) - int(a.h[i])
			}
		}
		return 0
	})
	out := make([]peer.ID, len(ws))
	for i, x := range ws {
		out[i] = x.id
	}
	return out
}

// ProvenLag is how many epochs a pass takes to count as earned trust
// (node's earnedTrust): a peer is proven in epoch e by a pass of one of its
// challenges of epoch e − ProvenLag or earlier. The verdicts of a
// challenge issued late in an epoch can arrive after the next epoch
// starts, at a different instant on each node; two epochs on, every node
// has heard them, so views agree on who is proven.
const ProvenLag = 2

// Pool is the peers that may hold challenger and verifier slots in one
// node's view (node's earnedTrust.judges): live and not graylisted, split by earned
// trust. proven have a passed challenge on record (node's earnedTrust), unproven
// have none.
//
// Slots go to proven peers first and to unproven ones only where too few
// proven peers exist: a target's challenger ranking and a challenge's
// verifier ranking list the proven candidates by Rendezvous weight, then
// the unproven ones. So an identity with no pass holds no verifier slot
// once k + 2 proven peers other than the target and challenger exist
// (possibleVerifiers reads k + 2 places), and no challenger slot once two
// proven peers other than the target do (legitimate accepts the first
// two); before that (genesis, when nobody has passed yet) the ranking is
// the plain Rendezvous ranking of every judge.
type Pool struct{ Proven, Unproven []peer.ID }

// Flat returns a Pool in which nobody is proven: the plain rendezvous
// ranking of ids.
func Flat(ids []peer.ID) Pool { return Pool{Unproven: ids} }

// Rank orders the Pool for key: the proven peers by descending rendezvous
// weight, then the unproven ones, skipping the excluded.
func (p Pool) Rank(tag string, key []byte, exclude ...peer.ID) []peer.ID {
	return append(Rank(tag, key, p.Proven, exclude...), Rank(tag, key, p.Unproven, exclude...)...)
}

// ChallengerRanking returns target's challenger ranking for epoch: the
// Rendezvous ranking keyed by (epoch, target), proven candidates first,
// target excluded.
func ChallengerRanking(epoch uint64, target peer.ID, candidates Pool) []peer.ID {
	key := binary.BigEndian.AppendUint64(nil, epoch)
	return candidates.Rank("poai/1/challenger", append(key, target...), target)
}

// ChallengerFor returns the peer that challenges target in epoch, the
// first of its challenger ranking, or "" when no other candidate exists.
func ChallengerFor(epoch uint64, target peer.ID, candidates Pool) peer.ID {
	r := ChallengerRanking(epoch, target, candidates)
	if len(r) == 0 {
		return ""
	}
	return r[0]
}

// VerifiersFor returns the k verifiers of a challenge: the top of the
// Rendezvous ranking keyed by (epoch, target, challenger), proven
// candidates first, excluding target and challenger. The key holds
// nothing the challenger can vary — keyed by the challenge CID, a
// challenger could try nonces offline until its accomplices were chosen.
// In a network of two, where nobody else exists, the challenger verifies.
func VerifiersFor(epoch uint64, target, challenger peer.ID, candidates Pool, k int) []peer.ID {
	key := binary.BigEndian.AppendUint64(nil, epoch)
	key = append(append(key, target...), challenger...)
	r := candidates.Rank("poai/1/verifier", key, target, challenger)
	if len(r) == 0 && challenger != "" && challenger != target {
		return []peer.ID{challenger}
	}
	return r[:min(k, len(r))]
}

// SlotOffset spreads the epoch's challenges so provers rarely compute at
// the same time: target's offset is 10% of the epoch plus its position
// among the sorted candidates times 80% of the epoch over their number.
func SlotOffset(target peer.ID, candidates []peer.ID, epoch time.Duration) time.Duration {
	sorted := slices.Clone(candidates)
	slices.Sort(sorted)
	i := max(slices.Index(sorted, target), 0)
	return epoch/10 + time.Duration(float64(epoch)*0.8*float64(i)/float64(max(len(sorted), 1)))
}

// ChallengeDrawn reports whether a challenger challenges a target in epoch
// e at challenge rate rate, given the epoch last of the target's latest
// challenge it knows of (or InitialLastChallenged) and a uniform draw u in
// [0,1): at rate 1 always; below it with probability DrawProbability(rate),
// or for sure in epoch last + MaxChallengeGap(rate), so that two
// challenges are at most that many epochs apart (8 at 0.25: seven epochs
// without one at most). Pure draws at rate 0.25 leave a peer unchallenged
// for 20 epochs once in 300 and with two challenges or fewer once in 11,
// too little evidence to judge it either way (the 1,000-peer sim ended
// with colluders and sybils never challenged). The draws stay
// unpredictable but for the last epoch of a gap, which the target can
// foresee; every challenger of a shard sees the same challenges, so they
// agree on it but for lost messages.
func ChallengeDrawn(e, last int64, rate, u float64) bool {
	return rate >= 1 || u < DrawProbability(rate) || e >= last+int64(MaxChallengeGap(rate))
}

// MaxChallengeGap returns the most epochs between two challenges of a
// target at challenge rate r in (0,1): ⌈2/r⌉, twice the mean gap (8 at
// 0.25).
func MaxChallengeGap(r float64) uint64 {
	if r >= 1 {
		return 1
	}
	return uint64(math.Ceil(2 / max(r, 1e-9)))
}

// InitialLastChallenged is what a node takes as a target's last challenge
// before it has seen one: the epoch it first heard the target's claim
// less SHA-256("poai/1/first-gap" || peer ID) mod MaxChallengeGap(rate), so
// targets first heard together (a whole network at genesis) come due in
// different epochs rather than in the same one, and every node with the
// same first epoch computes the same value.
func InitialLastChallenged(target peer.ID, heard uint64, rate float64) int64 {
	h := Rendezvous("poai/1/first-gap", nil, target)
	return int64(min(heard, math.MaxInt64/2)) - int64(binary.BigEndian.Uint64(h[:8])%MaxChallengeGap(rate))
}

// DrawProbability returns the per-epoch probability p that, with gaps
// capped at G = MaxChallengeGap(r), keeps the mean rate at r: the mean gap
// of draws with probability p truncated at G is (1 − (1−p)^G)/p, solved
// for 1/r by bisection (0.212 at r = 0.25). Without it the bound would
// raise the rate by a ninth, and the load with it.
func DrawProbability(r float64) float64 {
	if r >= 1 {
		return 1
	}
	r = max(r, 1e-9)
	g := float64(MaxChallengeGap(r))
	lo, hi := 0.0, r // mean gap falls with p: above 1/r at 0, below it at r
	for range 60 {
		p := (lo + hi) / 2
		if (1-math.Pow(1-p, g))/p > 1/r {
			lo = p
		} else {
			hi = p
		}
	}
	return (lo + hi) / 2
}

// ClaimSpread spreads the claims' re-announcement over the first
// 1/ClaimSpread of each epoch, before the first challenge slot (slotOffset
// and WaveOffset start at a tenth of the epoch): every node re-announces at
// its own offset (ClaimOffset) instead of all at the epoch's first instant.
// A thousand claims signed, gossiped and checked at once took a machine
// running many nodes (poai-sim) off its feet for about a second at every
// epoch boundary, stalling the proofs then running; on a real network it
// spares the bootstrap peers the same burst.
const ClaimSpread = 10

// ClaimOffset returns when, after the start of epoch e, node id
// re-announces its claim: a fraction of epoch/ClaimSpread fixed by a hash
// of the epoch and the peer ID.
func ClaimOffset(id peer.ID, e uint64, epoch time.Duration) time.Duration {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], e)
	h := Rendezvous("poai/1/claim", b[:], id)
	return time.Duration(binary.BigEndian.Uint64(h[:8]) % uint64(max(epoch/ClaimSpread, 1)))
}

// MaxWaves bounds [challenge] waves. Two identities on one device meet in
// 1/waves of the epochs, each missing about half of those, and a miss
// counts only beside another within scoring.MissWindow challenges: one wave
// is the setting that catches relays; a few more trade that for less
// synchronized load, and beyond four the meetings are too rare to count.
const MaxWaves = 4

// WaveOffset returns when in epoch e a challenger using waves instants per
// epoch (waves ≥ 1) issues its challenge of target: 10% of the epoch plus
// the target's wave, fixed by the epoch and its peer ID (Rendezvous hash),
// times 80% of the epoch over waves. Every challenger computes the same
// instant, so two identities proving on one device are challenged at once
// whenever they fall in the same wave (always, with one wave): the device
// answers one of them at least one anticipated time T late, which a
// deadline σ·T + A catches when σ + A/T < 2 (a catalog claim's σ = 1.5 with
// T ≥ 4·A; the relay of docs/adversaries.md). With more than one wave the
// wave is a public hash of the epoch and the peer ID: two identities made
// offline can be ground to avoid each other for a while, which one wave
// rules out.
func WaveOffset(e uint64, target peer.ID, waves int, epoch time.Duration) time.Duration {
	waves = max(waves, 1)
	h := Rendezvous("poai/1/wave", binary.BigEndian.AppendUint64(nil, e), target)
	w := binary.BigEndian.Uint64(h[:8]) % uint64(waves)
	return epoch/10 + time.Duration(float64(epoch)*0.8*float64(w)/float64(waves))
}

// NeedsFollowUp reports whether a target is challenged in the coming
// epoch whatever the draw: a verifier in good standing attested a failure
// of one of its challenges (lastFailed, the latest such challenge's
// epoch) and no pass of that epoch or a later one was heard (lastPassed);
// epochs are -1 when none was heard. A device that fails is then tested
// every epoch until it passes or is graylisted (the caller checks that),
// so a peer that is late every time builds the evidence that judges it
// in a few epochs rather than over 2/rate epochs per challenge (the
// 1,000-peer sim left slow peers at 2–4 challenges after 20 epochs, below
// MissRampEvidence); an honest peer that missed once is cleared by its
// next pass. A follow-up whose verdict nobody published (every verifier
// overloaded withholds a timing verdict, withholdTiming) clears nothing,
// so the failure stands and the next epoch follows up again: when the
// follow-up ended at one unjudged challenge, slow peers whose follow-ups
// fell in loaded spans kept 1–3 failures and stayed above the graylist.
// A follow-up adds evidence and removes none: a cheater that behaves in
// the epochs it can foresee is still judged on the others. A verifier
// lying about failures costs the target at most one extra challenge per
// epoch, and only until its lies graylist it or a pass clears them.
func NeedsFollowUp(lastFailed, lastPassed int64) bool {
	return lastFailed >= 0 && lastFailed > lastPassed
}
