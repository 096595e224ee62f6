package scoring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func open(t *testing.T, dir string) *Book {
	t.Helper()
	b, err := Open(context.Background(), dir, "self", DefaultParams(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func att(ch, target, verifier, verdict string) Attestation {
	acc := 1.0
	if verdict != VerdictPass && verdict != VerdictLate {
		acc = 0.5
	}
	return Attestation{Challenge: ch, Target: target, Verifier: verifier, Epoch: 1, Verdict: verdict,
		LatencyMS: 100, DeadlineMS: 200, Accuracy: acc}
}

func TestScoresSeparateHonestFromCheats(t *testing.T) {
	b := open(t, t.TempDir())
	defer b.Close()
	for i := range 10 {
		ch := fmt.Sprint("c", i)
		for _, v := range []string{"self", "v1", "v2"} {
			if err := b.Record(att(ch+"h", "honest", v, VerdictPass)); err != nil {
				t.Fatal(err)
			}
			if err := b.Record(att(ch+"l", "lazy", v, VerdictWrongAnswer)); err != nil {
				t.Fatal(err)
			}
			late := att(ch+"s", "slow", v, VerdictLate)
			late.LatencyMS = 240 // 20 % late: quality 0.6
			if err := b.Record(late); err != nil {
				t.Fatal(err)
			}
		}
	}
	h, l, s := b.Quality("honest"), b.Quality("lazy"), b.Quality("slow")
	if !(h > 0.95 && l < 0.05 && s > 0.55 && s < 0.65) {
		t.Fatalf("scores honest %.3f lazy %.3f slow %.3f", h, l, s)
	}
	sum, err := b.Summarize("lazy")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Challenges != 10 || sum.Failed != 10 || sum.Passed != 0 || sum.Accuracy != 0.5 {
		t.Fatalf("lazy summary %+v", sum)
	}
}

func TestQuality(t *testing.T) {
	for _, tc := range []struct {
		verdict           string
		latency, deadline float64
		want              float64
	}{
		{VerdictPass, 100, 200, 1},
		{VerdictLate, 220, 200, 0.8},
		{VerdictLate, 250, 200, 0.5},
		{VerdictLate, 300, 200, 0},
		{VerdictLate, 900, 200, 0},
		{VerdictLate, 100, 0, 0},
		{VerdictWrongAnswer, 10, 200, 0},
		{VerdictNoAnswer, 0, 200, 0},
	} {
		a := Attestation{Verdict: tc.verdict, LatencyMS: tc.latency, DeadlineMS: tc.deadline}
		if got := a.Quality(); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("%s %v/%v: quality %v, want %v", tc.verdict, tc.latency, tc.deadline, got, tc.want)
		}
	}
}

func TestAttesterWeight(t *testing.T) {
	b := open(t, t.TempDir())
	defer b.Close()
	// Drive "liar" to a low score, then let it attest against a peer.
	for i := range 20 {
		b.Record(att(fmt.Sprint("x", i), "liar", "self", VerdictWrongAnswer))
	}
	b.Record(att("y", "p", "liar", VerdictWrongAnswer))
	b.Record(att("y", "q", "self", VerdictWrongAnswer))
	if b.Quality("p") <= b.Quality("q") {
		t.Fatalf("a low-score attester moved the score as much as the local verifier: %v vs %v", b.Quality("p"), b.Quality("q"))
	}
}

func TestDuplicateAndInvalid(t *testing.T) {
	b := open(t, t.TempDir())
	defer b.Close()
	a := att("c", "p", "v", VerdictPass)
	if err := b.Record(a); err != nil {
		t.Fatal(err)
	}
	before := b.Quality("p")
	if err := b.Record(a); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	for _, bad := range []Attestation{
		{Challenge: "c2", Target: "p", Verifier: "p", Verdict: VerdictPass},
		{Challenge: "c2", Target: "p", Verifier: "v", Verdict: "maybe"},
		{Challenge: "c2", Target: "p", Verifier: "v", Verdict: VerdictPass, Accuracy: 2},
	} {
		if err := b.Record(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v: got %v", bad, err)
		}
	}
	if b.Quality("p") != before {
		t.Fatal("rejected attestations changed the score")
	}
}

// TestRestartKeepsHistory reopens a book, durable and compact (poai-sim's
// stores: no caches, no compression), and finds its history.
func TestRestartKeepsHistory(t *testing.T) {
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprint("compact=", compact), func(t *testing.T) {
			params := DefaultParams()
			params.Compact = compact
			open := func(dir string) *Book {
				b, err := Open(context.Background(), dir, "self", params, nil)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			dir := t.TempDir()
			b := open(dir)
			for i := range 5 {
				if err := b.Record(att(fmt.Sprint("c", i), "p", "self", VerdictWrongAnswer)); err != nil {
					t.Fatal(err)
				}
			}
			score := b.Quality("p")
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b = open(dir)
			defer b.Close()
			if got := b.Quality("p"); got != score {
				t.Fatalf("score after restart %v, want %v", got, score)
			}
			if s, _ := b.Summarize("p"); s.Challenges != 5 {
				t.Fatalf("challenges after restart %d", s.Challenges)
			}
			if err := b.Record(att("c0", "p", "self", VerdictPass)); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("tally lost across restart: %v", err)
			}
		})
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	b.db.Update(func(txn *badgerTxn) error { return txn.Set([]byte("meta/schema"), []byte("99")) })
	b.Close()
	if _, err := Open(context.Background(), dir, "self", DefaultParams(), nil); !errors.Is(err, ErrSchema) {
		t.Fatalf("got %v, want ErrSchema", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatalf("store damaged: %v", err)
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	if Percentile(xs, 50) != 3 || Percentile(xs, 99) != 5 || Percentile(xs, 0) != 1 || Percentile(nil, 50) != 0 {
		t.Fatal("percentiles wrong")
	}
	if xs[0] != 5 {
		t.Fatal("input modified")
	}
}

func BenchmarkRecord(b *testing.B) {
	book, err := Open(context.Background(), b.TempDir(), "self", DefaultParams(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer book.Close()
	for i := 0; b.Loop(); i++ {
		if err := book.Record(att(fmt.Sprint(i), "p", "v", VerdictPass)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAttestationHistory(t *testing.T) {
	b := open(t, t.TempDir())
	defer b.Close()
	for i := range 5 {
		if err := b.Record(att(fmt.Sprint("c", i), "p", "self", VerdictPass)); err != nil {
			t.Fatal(err)
		}
	}
	b.Record(att("x", "q", "self", VerdictWrongAnswer))
	got, err := b.Attestations("p", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Challenge != "c4" || got[2].Challenge != "c2" || got[0].Target != "p" || got[0].Weight != 1 {
		t.Fatalf("history %+v", got)
	}
	if all, _ := b.Attestations("p", 100); len(all) != 5 {
		t.Fatalf("%d attestations about p, want 5 (q's must not leak in)", len(all))
	}
}

// TestOpenCanceled: a store is opened under its caller's context; one
// already done stops the load, returns the context's error and leaves the
// store openable, its records intact.
func TestOpenCanceled(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	if err := b.Record(att("c", "p", "self", VerdictPass)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, dir, "self", DefaultParams(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("open under a canceled context: %v", err)
	}
	b = open(t, dir)
	defer b.Close()
	if len(b.Peers()) != 1 {
		t.Fatalf("%d peers after the canceled open, want 1", len(b.Peers()))
	}
}
