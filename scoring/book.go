package scoring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// SchemaVersion is the version of the on-disk layout written by this
// package. Keys (epochs as 20 decimal digits, so keys sort by epoch):
//
//	meta/schema                          → decimal schema version
//	peer/<peerID>                        → JSON PeerRecord
//	tally/<peerID>/<challenge>           → JSON Tally
//	att/<peerID>/<unix ns, 20 digits>/<challenge>/<verifier>
//	                                     → JSON Recorded (time-ordered history)
//	epoch/<epoch>/<target>/<challenge>/<verifier>
//	                                     → the att/ key (index by epoch; v2)
//	check/<epoch>/<challenge>/<verifier> → JSON Check (this node's re-checks; v2)
//	trust/<epoch>                        → JSON TrustVector (v2)
//
// Version 1 lacked the epoch index, checks and trust vectors; Open
// migrates it in one transaction.
const SchemaVersion = 2

// Verdict names used in Attestation.Verdict.
const (
	VerdictPass        = "pass"
	VerdictWrongAnswer = "wrong_answer"
	VerdictLate        = "late"
	VerdictNoAnswer    = "no_answer"
	VerdictBadProof    = "bad_proof"
	// VerdictUnreachable: no answer from a target not heard from at all
	// meanwhile (a partition, a restart): neither credit nor blame.
	VerdictUnreachable = "unreachable"
)

// Attestation is one verifier's judgement of one challenge of Target.
type Attestation struct {
	Challenge  string  `json:"challenge"` // challenge CID, string form
	Target     string  `json:"target"`    // peer ID of the prover
	Verifier   string  `json:"verifier"`  // peer ID of the verifier
	Epoch      uint64  `json:"epoch"`
	Verdict    string  `json:"verdict"`     // one of the Verdict* constants
	LatencyMS  float64 `json:"latency_ms"`  // challenge to commitment, verifier's clock
	DeadlineMS float64 `json:"deadline_ms"` // the challenge's deadline
	Deviation  float64 `json:"deviation"`   // max relative error of opened elements
	Accuracy   float64 `json:"accuracy"`    // fraction of opened rows correct, [0,1]
	// The prover's self-reported device state at commit time (0 if none):
	// SM clock and its maximum in MHz, temperature in °C.
	ClockMHz     uint32 `json:"clock_mhz,omitempty"`
	MaxClockMHz  uint32 `json:"max_clock_mhz,omitempty"`
	TemperatureC uint32 `json:"temperature_c,omitempty"`
	// RetryOf is the challenge CID (string form) this challenge retries
	// (pb.Challenge.retry_of), empty for a first try: a miss whose retry
	// passes is forgiven.
	RetryOf string `json:"retry_of,omitempty"`
	// Reason is the verifier's own explanation of a verdict other than a
	// pass (pb.Attestation.reason): which check failed. Informational.
	Reason string `json:"reason,omitempty"`
	// Evidence lists the content IDs (string form) of the messages the
	// verdict rests on: the target's commitment, then its opening, or two
	// commitments for equivocation.
	Evidence []string `json:"evidence,omitempty"`
}

// Pass reports whether the verdict is a pass.
func (a Attestation) Pass() bool { return a.Verdict == VerdictPass }

// Quality maps an attestation to [0,1]: 1 for a pass; for a correct but
// late answer, a linear ramp from 1 at the deadline to 0 at 1.5 times the
// deadline (10 % late scores 0.8, 25 % late 0.5), so jitter costs little and
// a device consistently far slower than claimed earns nothing; and 0 for a
// wrong, missing or malformed answer.
func (a Attestation) Quality() float64 {
	switch a.Verdict {
	case VerdictPass:
		return 1
	case VerdictLate:
		if a.DeadlineMS <= 0 {
			return 0
		}
		over := a.LatencyMS/a.DeadlineMS - 1
		return math.Max(0, math.Min(1, 1-2*over))
	}
	return 0
}

func (a Attestation) validate() error {
	switch {
	case a.Challenge == "" || a.Target == "" || a.Verifier == "":
		return fmt.Errorf("%w: missing challenge, target or verifier", ErrInvalid)
	case a.Target == a.Verifier:
		return fmt.Errorf("%w: self-attestation", ErrInvalid)
	case math.IsNaN(a.Accuracy) || a.Accuracy < 0 || a.Accuracy > 1:
		return fmt.Errorf("%w: accuracy %v", ErrInvalid, a.Accuracy)
	case math.IsNaN(a.Deviation) || math.IsInf(a.Deviation, 0) || a.Deviation < 0:
		return fmt.Errorf("%w: deviation %v", ErrInvalid, a.Deviation)
	case math.IsNaN(a.LatencyMS) || a.LatencyMS < 0 || math.IsNaN(a.DeadlineMS) || a.DeadlineMS < 0:
		return fmt.Errorf("%w: latency %v deadline %v", ErrInvalid, a.LatencyMS, a.DeadlineMS)
	}
	switch a.Verdict {
	case VerdictPass, VerdictWrongAnswer, VerdictLate, VerdictNoAnswer, VerdictBadProof, VerdictUnreachable:
		return nil
	}
	return fmt.Errorf("%w: verdict %q", ErrInvalid, a.Verdict)
}

// Params tune the fold.
type Params struct {
	// Initial is the score of a peer nobody has attested yet.
	Initial float64
	// Alpha is the step of the moving average: one attestation of weight
	// 1 moves the score a fraction Alpha of the way to its quality.
	Alpha float64
	// MinWeight is the least weight any attester's word carries.
	MinWeight float64
	// LatencySamples is how many recent latencies each peer keeps.
	LatencySamples int
	// Trust tunes the EigenTrust integrity score.
	Trust TrustParams
	// Compact shrinks the store for many books in one process (poai-sim):
	// 1 MiB memtables, 4 MiB value-log files, no block or index cache
	// (each cache is a ristretto instance with goroutines and buffers of its
	// own: 660 MiB of heap over a thousand stores),
	// writes not synced to disk before Record returns (a simulation needs
	// no durability across a power cut; a crash still leaves a store
	// Badger opens, since its writes remain atomic) and no background
	// compaction (each compactor polls every 50 ms, which a thousand
	// stores cannot afford). Level 0 then holds up to 64 tables before
	// writes stall: a compact book is for runs writing well under 64 MiB.
	Compact bool
}

// DefaultParams returns Initial 0.5, Alpha 0.25, MinWeight 0.05, 256
// latency samples and DefaultTrustParams.
func DefaultParams() Params {
	return Params{Initial: 0.5, Alpha: 0.25, MinWeight: 0.05, LatencySamples: 256, Trust: DefaultTrustParams()}
}

// PeerRecord is everything the book keeps about one peer.
type PeerRecord struct {
	Peer         string    `json:"peer"`
	Score        float64   `json:"score"`
	Attestations int       `json:"attestations"`
	Passes       int       `json:"passes"`
	Fails        int       `json:"fails"`
	LatenciesMS  []float64 `json:"latencies_ms"` // most recent last
	MaxDeviation float64   `json:"max_deviation"`
	AccuracySum  float64   `json:"accuracy_sum"`
	LastEpoch    uint64    `json:"last_epoch"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Tally collects the attestations of one challenge.
type Tally struct {
	Epoch      uint64   `json:"epoch"`
	PassWeight float64  `json:"pass_weight"`
	FailWeight float64  `json:"fail_weight"`
	Verifiers  []string `json:"verifiers"`
}

// Passed reports whether the weighted majority of attesters passed it.
func (t Tally) Passed() bool { return t.PassWeight > t.FailWeight }

// Book is a persistent score book. Scores are cached in memory, so Score is
// cheap; every Record is one Badger transaction that updates the peer's
// record and the challenge's tally together, synced to disk before Record
// returns. Safe for concurrent use.
type Book struct {
	db     *badger.DB
	dir    string
	closed atomic.Bool
	self   string
	params Params
	trust  TrustParams

	mu    sync.RWMutex
	peers map[string]*PeerRecord
	// window holds the retained attestations and checks this node's
	// re-checks, in memory for the EigenTrust rounds.
	window    []Attestation
	checks    []Check
	vector    TrustVector
	rolled    bool
	compacted uint64
	// overclaimed holds the peers this node's speed test found slower
	// than their claim (SetOverclaimed), at most maxOverclaimed.
	overclaimed map[string]bool
}

// maxOverclaimed bounds Book.overclaimed (a SpeedMonitor tracks at most
// maxSpeedPeers peers, so it can flag no more).
const maxOverclaimed = maxSpeedPeers

// SetOverclaimed records this node's own finding that peer's device is
// slower than its claim (on: a SpeedMonitor flag), or that it no longer
// is: while set, from the next trust round, the peer's integrity score is
// 0 and PeerTrust.Overclaimed is set. It is evidence this node gathered as
// a verifier, not an attestation, so it weighs nothing in other nodes'
// rounds. Kept in memory: a restarted node finds it again from the peer's
// next proofs.
func (b *Book) SetOverclaimed(peer string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !on {
		delete(b.overclaimed, peer)
		return
	}
	if b.overclaimed == nil {
		b.overclaimed = map[string]bool{}
	}
	if len(b.overclaimed) < maxOverclaimed {
		b.overclaimed[peer] = true
	}
}

// Open opens (creating if needed) the book in dir. self is the local peer
// ID: its own verifications carry full weight. It returns an error
// wrapping ErrSchema for a store from a newer version, and one wrapping
// ErrDamaged, naming the file and the ways to recover, for a table cut
// short or failing its checksum, or a store holding less than its Seal.
// Loading the peers' records stops, the store closed and ctx's error
// returned, when ctx is done (a large store on a slow disk, and the
// operator pressed Ctrl-C).
func Open(ctx context.Context, dir, self string, params Params, log *slog.Logger) (*Book, error) {
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{log}).
		WithNumVersionsToKeep(1).
		WithMemTableSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithBlockCacheSize(8 << 20)
	if params.Compact {
		opts = opts.WithSyncWrites(false).WithMemTableSize(1 << 20).WithValueLogFileSize(4 << 20).
			WithCompression(options.None).WithBlockCacheSize(0).WithIndexCacheSize(0).WithNumMemtables(2).
			WithNumCompactors(0).WithNumLevelZeroTables(48).WithNumLevelZeroTablesStall(64).WithValueThreshold(1 << 10)
	}
	links, err := preOpen(dir)
	if err != nil {
		return nil, fmt.Errorf("open score store %s: %w", dir, err)
	}
	kept := func(err error) error {
		if links == "" {
			return err
		}
		return fmt.Errorf("%w (its tables as they were before this open are kept at %s)", err, links)
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, kept(fmt.Errorf("open score store %s: %w", dir, err))
	}
	b := &Book{db: db, dir: dir, self: self, params: params, trust: params.Trust, peers: make(map[string]*PeerRecord)}
	if err := b.load(ctx); err != nil {
		db.Close()
		return nil, kept(err)
	}
	if err := b.checkSeal(); err != nil {
		db.Close()
		return nil, kept(err)
	}
	if links != "" {
		os.RemoveAll(links)
	}
	return b, nil
}

func (b *Book) load(ctx context.Context) error {
	from := 0
	err := b.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("meta/schema"))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			if err := txn.Set([]byte("meta/schema"), []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(string(v))
			if err != nil || n > SchemaVersion {
				return fmt.Errorf("%w: store has %q, this binary writes %d", ErrSchema, v, SchemaVersion)
			}
			if n < SchemaVersion {
				from = n
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("peer/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("load score store: %w", err)
			}
			var rec PeerRecord
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &rec) }); err != nil {
				return fmt.Errorf("load %s: %w", it.Item().Key(), err)
			}
			b.peers[rec.Peer] = &rec
		}
		return nil
	})
	if err != nil {
		return err
	}
	if from > 0 {
		if err := migrate(b.db, from); err != nil {
			return fmt.Errorf("migrate score store from schema %d: %w", from, err)
		}
	}
	return b.loadTrust()
}

// Size returns the store's LSM and value-log sizes in bytes.
func (b *Book) Size() (lsm, vlog int64) { return b.db.Size() }

// Close seals (Seal), flushes and closes the store. Closing it again does
// nothing.
func (b *Book) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	return errors.Join(b.seal(), b.db.Close())
}

// Score returns the peer's integrity score in [0,1] from the last
// EigenTrust round (PeerTrust.Score): 0 for a peer no trusted verifier has
// vouched for yet (newcomers start with no trust), 1 for the local peer.
func (b *Book) Score(peer string) float64 {
	if peer == b.self {
		return 1
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.vector.Peers[peer].Score
}

// Quality returns the moving average of the peer's answer quality, each
// attestation weighted by its verifier's score (Params.Initial if
// unknown): how well the peer answered lately, whoever it is. Score, not
// Quality, is what trust decisions use.
func (b *Book) Quality(peer string) float64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if r, ok := b.peers[peer]; ok {
		return r.Score
	}
	return b.params.Initial
}

// Weight returns how much an attestation by verifier counts: 1 for the
// local peer, else its score clamped to [MinWeight, 1].
func (b *Book) Weight(verifier string) float64 {
	if verifier == b.self {
		return 1
	}
	return math.Max(b.params.MinWeight, math.Min(1, b.Score(verifier)))
}

// Record folds one attestation into the target's score:
// score += Alpha · weight(verifier) · (quality − score). It returns an
// error wrapping ErrDuplicate if this verifier already attested the
// challenge, or ErrInvalid for a malformed attestation; the book is then
// unchanged.
func (b *Book) Record(a Attestation) error {
	if err := a.validate(); err != nil {
		return err
	}
	w := b.Weight(a.Verifier)
	b.mu.Lock()
	defer b.mu.Unlock()
	prev, ok := b.peers[a.Target]
	rec := PeerRecord{Peer: a.Target, Score: b.params.Initial}
	if ok {
		rec = *prev
		rec.LatenciesMS = slices.Clone(prev.LatenciesMS)
	}
	tallyKey := []byte("tally/" + a.Target + "/" + a.Challenge)
	err := b.db.Update(func(txn *badger.Txn) error {
		var t Tally
		if err := getJSON(txn, tallyKey, &t); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if slices.Contains(t.Verifiers, a.Verifier) {
			return fmt.Errorf("%w: %s on %s", ErrDuplicate, a.Verifier, a.Challenge)
		}
		t.Epoch = a.Epoch
		t.Verifiers = append(t.Verifiers, a.Verifier)
		if a.Pass() {
			t.PassWeight += w
		} else {
			t.FailWeight += w
		}
		rec.Score += b.params.Alpha * w * (a.Quality() - rec.Score)
		rec.Score = math.Max(0, math.Min(1, rec.Score))
		rec.Attestations++
		if a.Pass() {
			rec.Passes++
		} else {
			rec.Fails++
		}
		if a.Verdict != VerdictNoAnswer {
			rec.LatenciesMS = append(rec.LatenciesMS, a.LatencyMS)
			if over := len(rec.LatenciesMS) - b.params.LatencySamples; over > 0 {
				rec.LatenciesMS = rec.LatenciesMS[over:]
			}
		}
		rec.MaxDeviation = math.Max(rec.MaxDeviation, a.Deviation)
		rec.AccuracySum += a.Accuracy
		rec.LastEpoch = max(rec.LastEpoch, a.Epoch)
		rec.UpdatedAt = time.Now().UTC()
		if err := setJSON(txn, tallyKey, t); err != nil {
			return err
		}
		now := time.Now().UTC()
		attKey := fmt.Sprintf("att/%s/%020d/%s/%s", a.Target, now.UnixNano(), a.Challenge, a.Verifier)
		if err := setJSON(txn, []byte(attKey), Recorded{Attestation: a, Weight: w, ScoreAfter: rec.Score, At: now}); err != nil {
			return err
		}
		if err := txn.Set(epochKey("epoch/", a.Epoch, a.Target, a.Challenge, a.Verifier), []byte(attKey)); err != nil {
			return err
		}
		return setJSON(txn, []byte("peer/"+a.Target), rec)
	})
	if err != nil {
		return err
	}
	b.peers[a.Target] = &rec
	b.window = append(b.window, a)
	return nil
}

// Peers returns a copy of every peer's record, sorted by peer ID.
func (b *Book) Peers() []PeerRecord {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]PeerRecord, 0, len(b.peers))
	for _, r := range b.peers {
		c := *r
		c.LatenciesMS = slices.Clone(r.LatenciesMS)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer < out[j].Peer })
	return out
}

// Summary is the report view of one peer.
type Summary struct {
	Peer         string  `json:"peer_id"`
	Challenges   int     `json:"challenges_received"`
	Passed       int     `json:"passed"`
	Failed       int     `json:"failed"`
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
	MaxDeviation float64 `json:"max_score_deviation"`
	Accuracy     float64 `json:"accuracy"`
	Score        float64 `json:"score"`
	Attestations int     `json:"attestations"`
	// Trust is the peer's standing in the last EigenTrust round.
	Trust PeerTrust `json:"trust"`
	// Missed and Wrong count the retained attestations reporting a
	// missing or late answer, and a wrong answer or bad proof: misses can
	// be infrastructure (a partition, a restart), wrong answers cannot.
	Missed int `json:"missed"`
	Wrong  int `json:"wrong"`
}

// Summarize returns the peer's summary: challenges counted from the
// retained attestations (a challenge passed when the verifiers that passed
// it outweigh those that did not, each weighted by its standing in the
// last trust round — so unchecked verdicts of peers since found out do not
// decide it), latency percentiles over the kept samples, mean accuracy
// over attestations.
func (b *Book) Summarize(peer string) (Summary, error) {
	s := Summary{Peer: peer, Score: b.Score(peer)}
	b.mu.RLock()
	defer b.mu.RUnlock()
	s.Trust = b.vector.Peers[peer]
	if r, ok := b.peers[peer]; ok {
		s.Attestations = r.Attestations
		s.LatencyP50MS = Percentile(r.LatenciesMS, 50)
		s.LatencyP99MS = Percentile(r.LatenciesMS, 99)
		s.MaxDeviation = r.MaxDeviation
		if r.Attestations > 0 {
			s.Accuracy = r.AccuracySum / float64(r.Attestations)
		}
	}
	standing := func(v string) float64 {
		if v == b.self {
			return 1
		}
		return math.Max(b.params.MinWeight, b.vector.Peers[v].Score)
	}
	type tally struct{ pass, fail float64 }
	tallies := map[string]*tally{}
	for _, a := range b.window {
		if a.Target != peer {
			continue
		}
		switch a.Verdict {
		case VerdictNoAnswer, VerdictLate, VerdictUnreachable:
			s.Missed++
		case VerdictWrongAnswer, VerdictBadProof:
			s.Wrong++
		}
		t := tallies[a.Challenge]
		if t == nil {
			t = &tally{}
			tallies[a.Challenge] = t
		}
		if a.Pass() {
			t.pass += standing(a.Verifier)
		} else {
			t.fail += standing(a.Verifier)
		}
	}
	for _, t := range tallies {
		s.Challenges++
		if t.pass > t.fail {
			s.Passed++
		} else {
			s.Failed++
		}
	}
	return s, nil
}

// Recorded is an attestation as the book kept it: with the weight it was
// given and when it was recorded.
type Recorded struct {
	Attestation
	Weight float64 `json:"weight"`
	// ScoreAfter is the target's Quality once this attestation was folded
	// in: the history of the moving average.
	ScoreAfter float64   `json:"score_after"`
	At         time.Time `json:"recorded_at"`
}

// Attestations returns up to limit attestations about peer, most recent
// first.
func (b *Book) Attestations(peer string, limit int) ([]Recorded, error) {
	out := []Recorded{}
	prefix := []byte("att/" + peer + "/")
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true, PrefetchValues: true})
		defer it.Close()
		for it.Seek(append(append([]byte(nil), prefix...), 0xff)); it.Valid() && len(out) < limit; it.Next() {
			var r Recorded
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Percentile returns the p-th percentile (0–100, nearest rank) of xs, or 0
// for an empty slice. xs is not modified.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

func getJSON(txn *badger.Txn, key []byte, v any) error {
	item, err := txn.Get(key)
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

func setJSON(txn *badger.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set(key, b)
}

// badgerLogger routes Badger's logs to slog; its info chatter goes to
// debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug-4, f, a...) }
func (b badgerLogger) log(level slog.Level, f string, a ...any) {
	if b.l != nil {
		b.l.Log(context.Background(), level, fmt.Sprintf(f, a...), "component", "badger")
	}
}
