package scoring

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	badger "github.com/dgraph-io/badger/v4"
)

// TrustParams tune how attestations become integrity scores.
type TrustParams struct {
	EigenTrust EigenTrustParams
	// PreTrusted are peer IDs trusted a priori (bootstrap operators); the
	// local peer always is, so no clique can capture its view.
	PreTrusted []string
	// Decay multiplies every opinion once per epoch of age, so an old
	// reputation cannot be milked (0.85: an epoch-old outcome counts 85 %).
	Decay float64
	// WrongWeight is the unsatisfactory weight of a wrong answer or a bad
	// proof; MissWeight that of a missing answer. A late answer counts its
	// shortfall (1 − Attestation.Quality). Missing an answer can be bad
	// luck (a partition, a restart) and weighs 1; a wrong answer cannot.
	WrongWeight, MissWeight float64
	// CheckAgree and CheckContradict are the weights of this node's
	// re-check of another verifier's attestation: agreement earns a little
	// trust, a contradiction costs as much as a wrong answer.
	CheckAgree, CheckContradict float64
	// MinEvidence is the trust-weighted evidence (in attestations of a
	// fully trusted attester) below which a peer counts as a newcomer:
	// its Bad fraction is reported but not held against it.
	MinEvidence float64
	// Retention is the number of epochs of attestations, checks and trust
	// vectors kept; older ones are compacted away.
	Retention uint64
	// RetriesForgiveIsolatedOnly is false on spread schedules: a miss
	// whose retry passed is forgiven even when other misses of the peer
	// lie within MissWindow of it, since misses there come in bursts of
	// load. True on wave schedules (node's [challenge] waves): a retried
	// miss is forgiven only when isolated, like any other, and counts as a
	// neighbour's failure, because a device shared by two identities
	// misses in every wave that holds both and passes each retry alone, so
	// a passing retry says nothing about it.
	RetriesForgiveIsolatedOnly bool
	// ConsensusWeight is the unsatisfactory weight a verifier earns when
	// the weighted majority of a challenge's other verifiers contradicts
	// its correctness verdict.
	ConsensusWeight float64
}

// MissWindow is how many of a peer's challenges on each side of a missed
// one are searched for another failure before the miss counts: one miss
// among 8 passes on each side is forgiven as bad luck, so a peer that
// skips challenges on purpose gets at most one in nine for free.
const MissWindow = 8

// EvidenceStanding is the standing (relative trust × (1 − Bad)) from
// which a truster's outcomes count fully as evidence about a peer.
const EvidenceStanding = 0.1

// ConsensusMargin is how much more weight the majority of a challenge's
// verifiers must hold than the dissenter's side for the dissent to count.
const ConsensusMargin = 2

// verdictCorrect reports whether a verdict says the answer was right (in
// time or not), and whether it says anything about correctness at all.
func verdictCorrect(v string) (ok, known bool) {
	switch v {
	case VerdictPass, VerdictLate:
		return true, true
	case VerdictWrongAnswer, VerdictBadProof:
		return false, true
	}
	return false, false
}

// DefaultTrustParams are a = 0.15, decay 0.85 per epoch, wrong answers 4,
// missing ones 1 (once a neighbouring challenge confirms them), re-check
// agreement 0.5 and contradiction 4, consensus dissent 4 (lying as a
// verifier weighs as much as a wrong answer), newcomers below
// 1.5 attestations of evidence, 64 epochs kept.
func DefaultTrustParams() TrustParams {
	return TrustParams{EigenTrust: DefaultEigenTrustParams(), Decay: 0.85, WrongWeight: 4, MissWeight: 1,
		CheckAgree: 0.5, CheckContradict: 4, ConsensusWeight: 4, MinEvidence: 1.5, Retention: 64}
}

// PeerTrust is one peer's standing after an epoch's EigenTrust round.
type PeerTrust struct {
	// Trust is the peer's global trust (EigenTrust; all peers sum to 1).
	Trust float64 `json:"trust"`
	// Relative is Trust over the highest Trust of any other peer, in [0,1].
	Relative float64 `json:"relative"`
	// Bad is the trust-weighted fraction of unsatisfactory outcomes in the
	// evidence about the peer, in [0,1].
	Bad float64 `json:"bad"`
	// Missing is the part of Bad that came from missing or late answers,
	// which can be bad luck (a partition) rather than cheating.
	Missing float64 `json:"missing"`
	// Evidence is the standing-weighted amount of evidence retained about
	// the peer, undecayed, in outcome weights of a fully trusted verifier
	// (a pass counts 1, a wrong answer 4).
	Evidence float64 `json:"evidence"`
	// Score is the integrity score, Relative·(1 − Bad), in [0,1]: 0 for a
	// newcomer nobody vouches for yet, near 1 for a peer every trusted
	// verifier passes; 0 for a peer Overclaimed.
	Score float64 `json:"score"`
	// Overclaimed is set when this node's speed test found the peer's
	// device slower than its claim (Book.SetOverclaimed).
	Overclaimed bool `json:"overclaimed,omitempty"`
}

// TrustVector is the outcome of one EigenTrust round.
type TrustVector struct {
	Epoch uint64               `json:"epoch"`
	Peers map[string]PeerTrust `json:"peers"`
}

// Check is this node's re-check of another verifier's attestation: it
// recomputed the opened rows itself and agreed or not.
type Check struct {
	Verifier  string `json:"verifier"`
	Target    string `json:"target"`
	Challenge string `json:"challenge"`
	Epoch     uint64 `json:"epoch"`
	Agree     bool   `json:"agree"`
}

func epochKey(prefix string, epoch uint64, rest ...string) []byte {
	k := fmt.Sprintf("%s%020d", prefix, epoch)
	for _, r := range rest {
		k += "/" + r
	}
	return []byte(k)
}

// RecordCheck stores a re-check. A second check of the same attestation
// is ignored.
func (b *Book) RecordCheck(c Check) error {
	if c.Verifier == "" || c.Challenge == "" {
		return fmt.Errorf("%w: check without verifier or challenge", ErrInvalid)
	}
	key := epochKey("check/", c.Epoch, c.Challenge, c.Verifier)
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key); err == nil {
			return ErrDuplicate
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return setJSON(txn, key, c)
	})
	if errors.Is(err, ErrDuplicate) {
		return nil
	}
	if err != nil {
		return err
	}
	b.checks = append(b.checks, c)
	return nil
}

// opinionOf returns the satisfactory and unsatisfactory weight of one
// attestation, before decay.
func (b *Book) opinionOf(a Attestation) (sat, unsat float64) {
	switch a.Verdict {
	case VerdictWrongAnswer, VerdictBadProof:
		return 0, b.trust.WrongWeight
	case VerdictNoAnswer:
		return 0, b.trust.MissWeight
	case VerdictUnreachable:
		return 0, 0
	}
	q := a.Quality()
	return q, 1 - q
}

// Roll runs the EigenTrust round of epoch: opinions from every retained
// attestation (verifier → target) and this node's re-checks (self →
// verifier), each decayed by Decay per epoch of age; global trust with the
// local peer and PreTrusted as the pre-trusted set; then each peer's Bad
// fraction and Score. The vector is stored under trust/<epoch>, and data
// older than Retention epochs is compacted away, and the store is sealed
// (Seal; not in Params.Compact). Rolling an epoch older than the last one
// rolled is a no-op.
func (b *Book) Roll(epoch uint64) (TrustVector, error) {
	v, err := b.roll(epoch)
	if err == nil && !b.params.Compact {
		// Once an epoch, outside the lock (it syncs the disk): what a
		// later Open must find at least (Seal).
		err = b.seal()
	}
	return v, err
}

func (b *Book) roll(epoch uint64) (TrustVector, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rolled && epoch < b.vector.Epoch {
		return b.vector, nil
	}
	decay := func(e uint64) float64 {
		if e >= epoch {
			return 1
		}
		return math.Pow(b.trust.Decay, float64(epoch-e))
	}
	// Each target's challenges in order, and whether any verifier found
	// fault with each: a miss counts only when another of the MissWindow
	// challenges before or after it went wrong too (the next challenge is
	// the retry).
	type chal struct {
		epoch  uint64
		id     string
		target string
		bad    bool // some verifier found fault
		wrong  bool // some verifier found a wrong answer or bad proof
	}
	byTarget := map[string][]*chal{}
	index := map[string]*chal{}
	for _, a := range b.window {
		if a.Verdict == VerdictUnreachable {
			continue // infrastructure: neither a failure nor a success
		}
		c := index[a.Challenge]
		if c == nil {
			c = &chal{epoch: a.Epoch, id: a.Challenge, target: a.Target}
			index[a.Challenge] = c
			byTarget[a.Target] = append(byTarget[a.Target], c)
		}
		c.bad = c.bad || !a.Pass()
		c.wrong = c.wrong || a.Verdict == VerdictWrongAnswer || a.Verdict == VerdictBadProof
	}
	// A miss whose retry passed is forgiven outright, and is no failure
	// for its neighbours either: the retry did the work the miss skipped,
	// so skipping on purpose saves nothing. A wrong answer is never
	// forgiven.
	retried := map[string]bool{}
	for _, a := range b.window {
		if r := index[a.Challenge]; a.RetryOf != "" && r != nil && !r.bad {
			if c := index[a.RetryOf]; c != nil && c.target == a.Target && !c.wrong {
				retried[a.RetryOf] = true
				if !b.trust.RetriesForgiveIsolatedOnly {
					c.bad = false
				}
			}
		}
	}
	neighbourBad := map[string]bool{}
	for _, cs := range byTarget {
		sort.Slice(cs, func(i, j int) bool {
			if cs[i].epoch != cs[j].epoch {
				return cs[i].epoch < cs[j].epoch
			}
			return cs[i].id < cs[j].id
		})
		for k, c := range cs {
			for d := max(0, k-MissWindow); d <= min(len(cs)-1, k+MissWindow); d++ {
				if d != k && cs[d].bad {
					neighbourBad[c.id] = true
				}
			}
		}
	}
	op := Opinions{}
	raw := Opinions{} // the same, undecayed: how much is known, for Evidence
	for _, a := range b.window {
		sat, unsat := b.opinionOf(a)
		missed := a.Verdict == VerdictNoAnswer || a.Verdict == VerdictLate
		switch {
		case missed && a.RetryOf != "":
			// A missed retry confirms the miss it retried, which counts;
			// it is not a second one (one stall, one miss).
			sat, unsat = 0, 0
		case missed && (!neighbourBad[a.Challenge] || (retried[a.Challenge] && !b.trust.RetriesForgiveIsolatedOnly)):
			unsat = 0 // an isolated miss, or one whose retry passed: forgiven
		}
		w := decay(a.Epoch)
		miss := 0.0
		if a.Verdict == VerdictNoAnswer || a.Verdict == VerdictLate {
			miss = unsat
		}
		op.AddMiss(a.Verifier, a.Target, sat*w, unsat*w, miss*w)
		raw.Add(a.Verifier, a.Target, sat, unsat)
	}
	for _, c := range b.checks {
		w := decay(c.Epoch)
		if c.Agree {
			op.Add(b.self, c.Verifier, b.trust.CheckAgree*w, 0)
		} else {
			op.Add(b.self, c.Verifier, 0, b.trust.CheckContradict*w)
		}
	}
	pre := append([]string{b.self}, b.trust.PreTrusted...)
	t := EigenTrust(op, pre, b.trust.EigenTrust)
	var top float64
	for id, v := range t {
		if id != b.self {
			top = math.Max(top, v)
		}
	}
	relative := func(id string) float64 {
		if id == b.self || top == 0 {
			return map[bool]float64{true: 1, false: 0}[id == b.self]
		}
		return math.Min(1, t[id]/top)
	}
	// Bad and evidence: each opinion about j weighted by the standing of
	// whoever holds it. The standing starts as relative trust and is then
	// refined to the score (relative trust × (1 − Bad)) a few times, so a
	// trusted verifier that vouches for cheats loses its say as soon as
	// its own record sours. Consensus: on each challenge, a correctness
	// verdict that the weighted majority of its verifiers contradicts
	// (by at least ConsensusMargin to 1) counts against its verifier too.
	weight := map[string]float64{}
	for id := range t {
		weight[id] = relative(id)
	}
	type acc struct{ sat, unsat, miss float64 }
	var ev map[string]*acc
	byChallenge := map[string][]Attestation{}
	for _, a := range b.window {
		byChallenge[a.Challenge] = append(byChallenge[a.Challenge], a)
	}
	for pass := 0; pass < 3; pass++ {
		ev = map[string]*acc{}
		add := func(j string, wi, sat, unsat, miss float64) {
			a := ev[j]
			if a == nil {
				a = &acc{}
				ev[j] = a
			}
			a.sat += wi * sat
			a.unsat += wi * unsat
			a.miss += wi * miss
		}
		for i, row := range op {
			for j, o := range row {
				add(j, weight[i], o.Sat, o.Unsat, o.Miss)
			}
		}
		for _, atts := range byChallenge {
			var ok, bad float64
			for _, a := range atts {
				if c, known := verdictCorrect(a.Verdict); known {
					if c {
						ok += weight[a.Verifier]
					} else {
						bad += weight[a.Verifier]
					}
				}
			}
			for _, a := range atts {
				c, known := verdictCorrect(a.Verdict)
				if !known || a.Verifier == b.self {
					continue
				}
				against := bad
				if !c {
					against = ok
				}
				mine := ok + bad - against
				if against >= EvidenceStanding && against >= ConsensusMargin*mine {
					add(a.Verifier, 1, 0, b.trust.ConsensusWeight*decay(a.Epoch), 0)
				}
			}
		}
		for id := range t {
			if id == b.self {
				continue
			}
			bad := 0.0
			if a := ev[id]; a != nil && a.sat+a.unsat > 0 {
				bad = a.unsat / (a.sat + a.unsat)
			}
			weight[id] = relative(id) * (1 - bad)
		}
	}
	// Evidence is undecayed: decay fades what a peer did, not how well it
	// is known; an outcome counts fully when its truster's standing is at
	// least EvidenceStanding, so well-trusted honest verifiers all count;
	// is known, so a caught cheat stays judged (and graylisted) while its
	// record is retained, rather than drifting back to newcomer.
	evidence := map[string]float64{}
	for i, row := range raw {
		w := math.Min(1, weight[i]/EvidenceStanding)
		for j, o := range row {
			evidence[j] += w * (o.Sat + o.Unsat)
		}
	}
	v := TrustVector{Epoch: epoch, Peers: make(map[string]PeerTrust, len(t))}
	for id, tr := range t {
		pt := PeerTrust{Trust: tr, Relative: relative(id), Evidence: evidence[id]}
		if a := ev[id]; a != nil && a.sat+a.unsat > 0 {
			pt.Bad = a.unsat / (a.sat + a.unsat)
			pt.Missing = a.miss / (a.sat + a.unsat)
		}
		pt.Score = pt.Relative * (1 - pt.Bad)
		if b.overclaimed[id] {
			pt.Score, pt.Overclaimed = 0, true
		}
		if id == b.self {
			pt.Score, pt.Bad, pt.Missing = 1, 0, 0
		}
		v.Peers[id] = pt
	}
	err := b.db.Update(func(txn *badger.Txn) error { return setJSON(txn, epochKey("trust/", epoch), v) })
	if err != nil {
		return TrustVector{}, err
	}
	b.vector, b.rolled = v, true
	if epoch >= b.trust.Retention {
		if err := b.compactLocked(epoch - b.trust.Retention); err != nil {
			return v, err
		}
	}
	return v, nil
}

// Trust returns the last trust vector rolled (or loaded), and whether
// there is one.
func (b *Book) Trust() (TrustVector, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.vector, b.rolled
}

// Retained returns a copy of the retained attestations (those of the last
// [scoring] retention_epochs, loaded from the store on Open), oldest
// epoch first.
func (b *Book) Retained() []Attestation {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return slices.Clone(b.window)
}

// PeerTrust returns one peer's standing in the last trust vector.
func (b *Book) PeerTrust(peer string) (PeerTrust, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	pt, ok := b.vector.Peers[peer]
	return pt, ok
}

// TrustHistory returns the stored trust vectors of epochs [from, to].
func (b *Book) TrustHistory(from, to uint64) ([]TrustVector, error) {
	out := []TrustVector{}
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("trust/"), PrefetchValues: true})
		defer it.Close()
		for it.Seek(epochKey("trust/", from)); it.Valid(); it.Next() {
			var v TrustVector
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &v) }); err != nil {
				return err
			}
			if v.Epoch > to {
				break
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// EpochAttestations returns the attestations recorded for epoch, through
// the epoch index.
func (b *Book) EpochAttestations(epoch uint64) ([]Recorded, error) {
	out := []Recorded{}
	prefix := epochKey("epoch/", epoch)
	prefix = append(prefix, '/')
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			ref, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var r Recorded
			if err := getJSON(txn, ref, &r); err != nil {
				return fmt.Errorf("epoch index %s: %w", it.Item().Key(), err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// compactLocked deletes attestations (with their index and tallies),
// checks and trust vectors of epochs before cutoff, in batches, and drops
// them from memory. The caller holds b.mu.
func (b *Book) compactLocked(cutoff uint64) error {
	if cutoff <= b.compacted {
		return nil
	}
	var del [][]byte
	err := b.db.View(func(txn *badger.Txn) error {
		for _, prefix := range []string{"epoch/", "check/", "trust/"} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: prefix == "epoch/"})
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				if string(k) >= string(epochKey(prefix, cutoff)) {
					break
				}
				del = append(del, it.Item().KeyCopy(nil))
				if prefix == "epoch/" {
					ref, err := it.Item().ValueCopy(nil)
					if err != nil {
						it.Close()
						return err
					}
					del = append(del, ref)
					// epoch/<e>/<target>/<challenge>/<verifier>: the tally
					// of that challenge goes with it.
					parts := splitKey(string(k))
					if len(parts) == 5 {
						del = append(del, []byte("tally/"+parts[2]+"/"+parts[3]))
					}
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return err
	}
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range del {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	b.window = slices.DeleteFunc(b.window, func(a Attestation) bool { return a.Epoch < cutoff })
	b.checks = slices.DeleteFunc(b.checks, func(c Check) bool { return c.Epoch < cutoff })
	b.compacted = cutoff
	return nil
}

func splitKey(k string) []string {
	var out []string
	start := 0
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			out = append(out, k[start:i])
			start = i + 1
		}
	}
	return append(out, k[start:])
}

// migrations upgrade a store from the version in the key to the next.
// Each is idempotent and writes in batches (a store of any size fits).
var migrations = map[int]func(db *badger.DB) error{
	// 1 → 2: index attestations by epoch (epoch/<e>/<target>/<challenge>/
	// <verifier> → att key), for per-epoch reads and retention.
	1: func(db *badger.DB) error {
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		err := db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("att/"), PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				var r Recorded
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
					return fmt.Errorf("migrate %s: %w", it.Item().Key(), err)
				}
				if err := wb.Set(epochKey("epoch/", r.Epoch, r.Target, r.Challenge, r.Verifier), it.Item().KeyCopy(nil)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return wb.Flush()
	},
}

// migrate runs the migrations from version `from` up to SchemaVersion,
// then records the new version.
func migrate(db *badger.DB, from int) error {
	for v := from; v < SchemaVersion; v++ {
		m, ok := migrations[v]
		if !ok {
			return fmt.Errorf("%w: no migration from version %d", ErrSchema, v)
		}
		if err := m(db); err != nil {
			return err
		}
	}
	// The version moves last: a crash midway leaves the old version, and
	// the migrations are idempotent, so the next open runs them again.
	return db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte("meta/schema"), []byte(strconv.Itoa(SchemaVersion)))
	})
}

// loadTrust reads the retained attestations, checks and the latest trust
// vector into memory.
func (b *Book) loadTrust() error {
	return b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("att/"), PrefetchValues: true})
		for it.Rewind(); it.Valid(); it.Next() {
			var r Recorded
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				it.Close()
				return fmt.Errorf("load %s: %w", it.Item().Key(), err)
			}
			b.window = append(b.window, r.Attestation)
		}
		it.Close()
		sort.SliceStable(b.window, func(i, j int) bool { return b.window[i].Epoch < b.window[j].Epoch })
		it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte("check/"), PrefetchValues: true})
		for it.Rewind(); it.Valid(); it.Next() {
			var c Check
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &c) }); err != nil {
				it.Close()
				return fmt.Errorf("load %s: %w", it.Item().Key(), err)
			}
			b.checks = append(b.checks, c)
		}
		it.Close()
		it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte("trust/"), Reverse: true, PrefetchValues: true})
		defer it.Close()
		it.Seek([]byte("trust/\xff"))
		if it.Valid() {
			var v TrustVector
			if err := it.Item().Value(func(x []byte) error { return json.Unmarshal(x, &v) }); err != nil {
				return fmt.Errorf("load %s: %w", it.Item().Key(), err)
			}
			b.vector, b.rolled = v, true
		}
		return nil
	})
}
