package scoring

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

func TestEigenTrustBasics(t *testing.T) {
	op := Opinions{}
	// a, b, c vouch for each other; d is vouched for by nobody.
	for _, i := range []string{"a", "b", "c"} {
		for _, j := range []string{"a", "b", "c"} {
			if i != j {
				op.Add(i, j, 10, 0)
			}
		}
		op.Add(i, "d", 0, 5)
	}
	tr := EigenTrust(op, []string{"a"}, DefaultEigenTrustParams())
	var sum float64
	for _, v := range tr {
		sum += v
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Fatalf("trust sums to %v, want 1", sum)
	}
	if tr["d"] != 0 {
		t.Fatalf("d, distrusted by all, has trust %v", tr["d"])
	}
	if tr["b"] <= 0.2 || math.Abs(tr["b"]-tr["c"]) > 1e-9 {
		t.Fatalf("b and c should share trust equally: %v", tr)
	}
}

// TestEigenTrustResistsCollusion: a clique of 30 % that vouches for itself
// and against everyone else, and cheats when challenged, ends with less
// trust than any honest peer from every honest peer's view.
func TestEigenTrustResistsCollusion(t *testing.T) {
	const honest, colluders = 14, 6
	name := func(p string, i int) string { return p + strconv.Itoa(i) }
	op := Opinions{}
	for i := range honest {
		for j := range honest {
			if i != j {
				op.Add(name("h", i), name("h", j), 5, 0)
			}
		}
		for j := range colluders {
			op.Add(name("h", i), name("c", j), 0, 8) // they fail honest verifiers' challenges
		}
	}
	for i := range colluders {
		for j := range colluders {
			if i != j {
				op.Add(name("c", i), name("c", j), 50, 0)
			}
		}
		for j := range honest {
			op.Add(name("c", i), name("h", j), 0, 50)
		}
	}
	// One careless honest peer once passed a colluder.
	op.Add("h0", "c0", 20, 0)
	for v := range honest {
		self := name("h", v)
		tr := EigenTrust(op, []string{self}, DefaultEigenTrustParams())
		minHonest, maxColl := math.Inf(1), 0.0
		for i := range honest {
			if name("h", i) != self {
				minHonest = math.Min(minHonest, tr[name("h", i)])
			}
		}
		for i := range colluders {
			maxColl = math.Max(maxColl, tr[name("c", i)])
		}
		if maxColl >= minHonest {
			t.Fatalf("view of %s: colluder trust %v ≥ honest minimum %v", self, maxColl, minHonest)
		}
	}
}

func openTrust(t *testing.T, dir string, prm Params) *Book {
	t.Helper()
	b, err := Open(context.Background(), dir, "self", prm, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRollScoresAndPersists: an EigenTrust round separates honest, lazy and
// absent peers; a newcomer starts at 0; the vector survives a restart.
func TestRollScoresAndPersists(t *testing.T) {
	dir := t.TempDir()
	b := openTrust(t, dir, DefaultParams())
	verifiers := []string{"self", "v1", "v2", "v3"}
	for e := uint64(0); e < 5; e++ {
		for k, v := range verifiers {
			for _, target := range verifiers {
				if target == v {
					continue
				}
				a := att(fmt.Sprint("c", e, target, k), target, v, VerdictPass)
				a.Epoch = e
				if err := b.Record(a); err != nil {
					t.Fatal(err)
				}
			}
			a := att(fmt.Sprint("l", e, k), "lazy", v, VerdictWrongAnswer)
			a.Epoch = e
			if err := b.Record(a); err != nil {
				t.Fatal(err)
			}
			m := att(fmt.Sprint("m", e, k), "gone", v, VerdictNoAnswer)
			m.Epoch = e
			if err := b.Record(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	v, err := b.Roll(5)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"v1", "v2", "v3"} {
		if s := b.Score(p); s < 0.9 {
			t.Fatalf("honest %s scores %v: %+v", p, s, v.Peers[p])
		}
	}
	if s := b.Score("lazy"); s > 0.05 {
		t.Fatalf("lazy scores %v", s)
	}
	if s := b.Score("gone"); s > 0.05 {
		t.Fatalf("a peer that never answers scores %v", s)
	}
	if b.Score("newcomer") != 0 {
		t.Fatal("a newcomer has trust before anyone vouched for it")
	}
	want := b.Score("v1")
	b.Close()
	b = openTrust(t, dir, DefaultParams())
	defer b.Close()
	if got := b.Score("v1"); got != want {
		t.Fatalf("after restart v1 scores %v, want %v", got, want)
	}
	hist, err := b.TrustHistory(0, 10)
	if err != nil || len(hist) != 1 || hist[0].Epoch != 5 {
		t.Fatalf("trust history %v, %v", hist, err)
	}
	atts, err := b.EpochAttestations(2)
	if err != nil || len(atts) != 4*3+4*2 {
		t.Fatalf("epoch 2 has %d attestations (%v), want 20", len(atts), err)
	}
}

// TestContradictedVerifierLosesTrust: a verifier this node caught
// attesting against the recomputed truth loses its trust even though it
// answers its own challenges well.
func TestContradictedVerifierLosesTrust(t *testing.T) {
	b := openTrust(t, t.TempDir(), DefaultParams())
	defer b.Close()
	for e := uint64(0); e < 4; e++ {
		for _, v := range []string{"self", "v1", "liar"} {
			for _, target := range []string{"v1", "liar", "v2"} {
				if target == v {
					continue
				}
				a := att(fmt.Sprint(e, v, target), target, v, VerdictPass)
				a.Epoch = e
				if err := b.Record(a); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, c := range []Check{
			{Verifier: "liar", Target: "x", Challenge: fmt.Sprint("x", e), Epoch: e, Agree: false},
			{Verifier: "v1", Target: "x", Challenge: fmt.Sprint("x", e), Epoch: e, Agree: true},
		} {
			if err := b.RecordCheck(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := b.Roll(4); err != nil {
		t.Fatal(err)
	}
	if l, h := b.Score("liar"), b.Score("v1"); l >= h/2 {
		t.Fatalf("contradicted verifier %v, honest verifier %v", l, h)
	}
}

// TestDecayForgetsOldReputation: a peer honest long ago and cheating now
// falls, because old passes decay.
func TestDecayForgetsOldReputation(t *testing.T) {
	b := openTrust(t, t.TempDir(), DefaultParams())
	defer b.Close()
	for e := uint64(0); e < 20; e++ {
		verdict := VerdictPass
		if e >= 14 {
			verdict = VerdictWrongAnswer
		}
		for _, v := range []string{"self", "v1"} {
			a := att(fmt.Sprint("o", e, v), "onoff", v, verdict)
			a.Epoch = e
			if err := b.Record(a); err != nil {
				t.Fatal(err)
			}
			h := att(fmt.Sprint("h", e, v), "v2", v, VerdictPass)
			h.Epoch = e
			if err := b.Record(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := b.Roll(20); err != nil {
		t.Fatal(err)
	}
	if s := b.Score("onoff"); s > 0.2 {
		t.Fatalf("a peer cheating for the last 6 epochs after 14 honest ones scores %v", s)
	}
}

// TestRetentionCompacts: data older than Retention epochs leaves the
// store and memory.
func TestRetentionCompacts(t *testing.T) {
	prm := DefaultParams()
	prm.Trust.Retention = 4
	b := openTrust(t, t.TempDir(), prm)
	defer b.Close()
	for e := uint64(0); e < 10; e++ {
		a := att(fmt.Sprint("c", e), "p", "v", VerdictPass)
		a.Epoch = e
		if err := b.Record(a); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Roll(e); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := b.EpochAttestations(3)
	recent, _ := b.EpochAttestations(8)
	if len(old) != 0 || len(recent) != 1 {
		t.Fatalf("epoch 3 kept %d, epoch 8 kept %d", len(old), len(recent))
	}
	hist, _ := b.TrustHistory(0, 100)
	if len(hist) != 5 || hist[0].Epoch != 5 {
		t.Fatalf("trust history kept %d vectors from epoch %v", len(hist), hist)
	}
	if n := len(b.window); n != 5 {
		t.Fatalf("memory window holds %d attestations, want 5", n)
	}
}

// TestMigratesSchema1: a version-1 store (no epoch index) opens, is
// migrated, and answers per-epoch reads.
func TestMigratesSchema1(t *testing.T) {
	dir := t.TempDir()
	b := openTrust(t, dir, DefaultParams())
	a := att("c1", "p", "v", VerdictPass)
	a.Epoch = 7
	if err := b.Record(a); err != nil {
		t.Fatal(err)
	}
	// Turn it into a version-1 store: drop the index, write version 1.
	err := b.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(epochKey("epoch/", 7, "p", "c1", "v")); err != nil {
			return err
		}
		return txn.Set([]byte("meta/schema"), []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openTrust(t, dir, DefaultParams())
	defer b.Close()
	got, err := b.EpochAttestations(7)
	if err != nil || len(got) != 1 || got[0].Challenge != "c1" {
		t.Fatalf("after migration epoch 7 has %v (%v)", got, err)
	}
	var version string
	_ = b.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("meta/schema"))
		if err == nil {
			v, _ := it.ValueCopy(nil)
			version = string(v)
		}
		return err
	})
	if version != strconv.Itoa(SchemaVersion) {
		t.Fatalf("schema after migration %q", version)
	}
}

// TestIsolatedMissForgiven: one missed challenge among passes costs an
// honest peer nothing; misses in consecutive epochs count.
func TestIsolatedMissForgiven(t *testing.T) {
	b := openTrust(t, t.TempDir(), DefaultParams())
	defer b.Close()
	for e := uint64(0); e < 8; e++ {
		for _, v := range []string{"self", "v1"} {
			vh := VerdictPass
			if e == 3 {
				vh = VerdictNoAnswer // a hiccup: one epoch
			}
			for target, verdict := range map[string]string{"hiccup": vh, "flaky": VerdictNoAnswer, "v2": VerdictPass} {
				if target == "flaky" && e%2 == 1 {
					verdict = VerdictPass
				}
				a := att(fmt.Sprint(target, e), target, v, verdict) // one challenge, two verifiers
				a.Epoch = e
				if err := b.Record(a); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if _, err := b.Roll(8); err != nil {
		t.Fatal(err)
	}
	h, _ := b.PeerTrust("hiccup")
	f, _ := b.PeerTrust("flaky")
	if h.Bad != 0 {
		t.Fatalf("an isolated miss counted: %+v", h)
	}
	if f.Bad < 0.2 {
		t.Fatalf("misses every other epoch were forgiven: %+v", f)
	}
}

// TestRetriedMissForgiven: a peer that misses every other challenge has
// its misses counted (TestIsolatedMissForgiven), unless each miss was
// retried and the retry passed; a failed retry, or a retry of a wrong
// answer, forgives nothing.
func TestRetriedMissForgiven(t *testing.T) {
	b := openTrust(t, t.TempDir(), DefaultParams())
	defer b.Close()
	record := func(a Attestation) {
		t.Helper()
		if err := b.Record(a); err != nil {
			t.Fatal(err)
		}
	}
	for e := uint64(0); e < 8; e++ {
		for _, v := range []string{"self", "v1"} {
			for _, target := range []string{"retried", "retry-failed", "wrong", "v2"} {
				first := VerdictPass
				if e%2 == 0 && target != "v2" {
					first = VerdictNoAnswer
					if target == "wrong" {
						first = VerdictWrongAnswer
					}
				}
				a := att(fmt.Sprint(target, e), target, v, first)
				a.Epoch = e
				record(a)
				if first == VerdictPass {
					continue
				}
				retry := VerdictPass
				if target == "retry-failed" {
					retry = VerdictNoAnswer
				}
				r := att(fmt.Sprint(target, e, "/retry"), target, v, retry)
				r.Epoch, r.RetryOf = e, a.Challenge
				record(r)
			}
		}
	}
	if _, err := b.Roll(8); err != nil {
		t.Fatal(err)
	}
	ok, _ := b.PeerTrust("retried")
	failed, _ := b.PeerTrust("retry-failed")
	wrong, _ := b.PeerTrust("wrong")
	if ok.Bad != 0 || ok.Missing != 0 {
		t.Fatalf("misses whose retries passed counted: %+v", ok)
	}
	if failed.Missing < 0.2 {
		t.Fatalf("misses whose retries failed too were forgiven: %+v", failed)
	}
	// One stall is one miss: its missed retry is not a second. Half the
	// first tries missed, so about half the record is misses (decay
	// weighs recent epochs more: 0.46 here), not about two thirds (0.63).
	if failed.Missing > 0.55 {
		t.Fatalf("a missed retry counted as a miss of its own: %+v", failed)
	}
	if wrong.Bad-wrong.Missing < 0.2 {
		t.Fatalf("wrong answers were forgiven by a passing retry: %+v", wrong)
	}
}

// TestWaveRetriesForgiveIsolatedOnly: on a wave schedule
// (RetriesForgiveIsolatedOnly) a peer that misses every other challenge
// and passes every retry, as two identities on one device do, has its
// misses counted; a single retried miss among passes is still forgiven.
// The spread schedule's rule forgives both.
func TestWaveRetriesForgiveIsolatedOnly(t *testing.T) {
	for _, forgive := range []bool{true, false} {
		p := DefaultParams()
		p.Trust.RetriesForgiveIsolatedOnly = !forgive
		b := openTrust(t, t.TempDir(), p)
		for e := uint64(0); e < 8; e++ {
			for _, v := range []string{"self", "v1"} {
				for _, target := range []string{"shared", "once", "v2"} {
					first := VerdictPass
					if target == "shared" && e%2 == 0 || target == "once" && e == 3 {
						first = VerdictNoAnswer
					}
					a := att(fmt.Sprint(target, e), target, v, first)
					a.Epoch = e
					if err := b.Record(a); err != nil {
						t.Fatal(err)
					}
					if first == VerdictPass {
						continue
					}
					r := att(fmt.Sprint(target, e, "/retry"), target, v, VerdictPass)
					r.Epoch, r.RetryOf = e, a.Challenge
					if err := b.Record(r); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if _, err := b.Roll(8); err != nil {
			t.Fatal(err)
		}
		shared, _ := b.PeerTrust("shared")
		once, _ := b.PeerTrust("once")
		if once.Missing != 0 {
			t.Errorf("forgive repeats %v: an isolated retried miss counted: %+v", forgive, once)
		}
		if forgive && shared.Missing != 0 {
			t.Errorf("spread schedule: retried misses counted: %+v", shared)
		}
		if !forgive && shared.Missing < 0.2 {
			t.Errorf("wave schedule: repeated misses forgiven by their retries: %+v", shared)
		}
		b.Close()
	}
}

// TestMigratesLargeSchema1: a version-1 store with more attestations than
// one Badger transaction holds migrates (in batches).
func TestMigratesLargeSchema1(t *testing.T) {
	dir := t.TempDir()
	b := openTrust(t, dir, DefaultParams())
	wb := b.db.NewWriteBatch()
	const n = 20000
	for i := range n {
		a := att(fmt.Sprint("c", i), "p", "v", VerdictPass)
		a.Epoch = uint64(i / 100)
		v, _ := json.Marshal(Recorded{Attestation: a, Weight: 1})
		if err := wb.Set([]byte(fmt.Sprintf("att/p/%020d/c%d/v", i, i)), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Set([]byte("meta/schema"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openTrust(t, dir, DefaultParams())
	defer b.Close()
	got, err := b.EpochAttestations(150)
	if err != nil || len(got) != 100 {
		t.Fatalf("epoch 150 after migrating %d attestations: %d (%v)", n, len(got), err)
	}
}

// TestSpacedMissesCount: a peer that skips every fourth challenge is not
// forgiven (only one miss in nine is).
func TestSpacedMissesCount(t *testing.T) {
	b := openTrust(t, t.TempDir(), DefaultParams())
	defer b.Close()
	for e := uint64(0); e < 40; e++ {
		verdict := VerdictPass
		if e%4 == 0 {
			verdict = VerdictNoAnswer
		}
		for _, v := range []string{"self", "v1"} {
			a := att(fmt.Sprint("s", e), "skipper", v, verdict)
			a.Epoch = e
			if err := b.Record(a); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := b.Roll(40); err != nil {
		t.Fatal(err)
	}
	if pt, _ := b.PeerTrust("skipper"); pt.Bad < 0.1 {
		t.Fatalf("every fourth challenge skipped for free: %+v", pt)
	}
}

// TestOverclaimedScoresZero: a peer this node's speed test flags has
// integrity 0 from the next round, whatever its record, and its own again
// once the flag is lifted.
func TestOverclaimedScoresZero(t *testing.T) {
	b := openTrust(t, t.TempDir(), DefaultParams())
	defer b.Close()
	for e := uint64(0); e < 4; e++ {
		for k, v := range []string{"self", "v1", "v2"} {
			for _, target := range []string{"v1", "v2", "fast"} {
				if target == v {
					continue
				}
				a := att(fmt.Sprint("c", e, target, k), target, v, VerdictPass)
				a.Epoch = e
				if err := b.Record(a); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	score := func(e uint64) PeerTrust {
		v, err := b.Roll(e)
		if err != nil {
			t.Fatal(err)
		}
		return v.Peers["fast"]
	}
	if pt := score(4); pt.Score < 0.5 || pt.Overclaimed {
		t.Fatalf("before the flag: %+v", pt)
	}
	b.SetOverclaimed("fast", true)
	if pt := score(5); pt.Score != 0 || !pt.Overclaimed {
		t.Fatalf("flagged: %+v", pt)
	}
	b.SetOverclaimed("fast", false)
	if pt := score(6); pt.Score < 0.5 || pt.Overclaimed {
		t.Fatalf("flag lifted: %+v", pt)
	}
}
