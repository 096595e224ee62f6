package node

import (
	"fmt"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestSelectionProvenFirst: with at least k proven peers besides the
// target and challenger, no unproven peer holds a verifier slot, and with
// one proven peer besides the target none is its scheduled challenger;
// with too few proven peers unproven ones fill the rest of the ranking.
func TestSelectionProvenFirst(t *testing.T) {
	var proven, unproven []peer.ID
	for i := range 5 {
		proven = append(proven, peer.ID(fmt.Sprint("proven-", i)))
	}
	for i := range 30 {
		unproven = append(unproven, peer.ID(fmt.Sprint("flood-", i)))
	}
	p := pool{proven: proven, unproven: unproven}
	target, challenger := proven[0], proven[1]
	for e := range uint64(200) {
		v := verifiersFor(e, target, challenger, p, 3)
		if len(v) != 3 || slices.ContainsFunc(v, func(id peer.ID) bool { return !slices.Contains(proven, id) }) {
			t.Fatalf("epoch %d: verifiers %v, want 3 of the proven peers", e, v)
		}
		// possibleVerifiers' k + 2: the 3 proven others, then 2 unproven.
		if w := verifiersFor(e, target, challenger, p, 5); !slices.Equal(w[:3], v) || slices.Contains(proven, w[3]) {
			t.Fatalf("epoch %d: wide ranking %v does not extend %v with unproven peers", e, w, v)
		}
		if c := challengerFor(e, unproven[0], p); !slices.Contains(proven, c) {
			t.Fatalf("epoch %d: unproven challenger %s with proven peers available", e, c)
		}
		if r := challengerRanking(e, target, p); !slices.Contains(proven, r[1]) {
			t.Fatalf("epoch %d: second challenger %s unproven with 4 proven peers besides the target", e, r[1])
		}
	}
	// Genesis: nobody proven, the plain ranking.
	if got, want := verifiersFor(3, target, challenger, flat(append(slices.Clone(proven), unproven...)), 3),
		rank("poai/1/verifier", append([]byte{0, 0, 0, 0, 0, 0, 0, 3}, append([]byte(target), challenger...)...), append(slices.Clone(proven), unproven...), target, challenger)[:3]; !slices.Equal(got, want) {
		t.Fatalf("flat pool: %v, plain ranking %v", got, want)
	}
	// One proven peer besides target and challenger: it verifies, and
	// unproven peers fill the other two places.
	v := verifiersFor(9, target, challenger, pool{proven: proven[:3], unproven: unproven}, 3)
	if v[0] != proven[2] || slices.Contains(proven, v[1]) || slices.Contains(proven, v[2]) {
		t.Fatalf("verifiers %v: want %s first, then two unproven peers", v, proven[2])
	}
}

// TestProven: a pass counts ProvenLag epochs after the epoch of its
// challenge, is lost with good standing, and a pre-trusted peer is proven
// from genesis.
func TestProven(t *testing.T) {
	pre := randomID(t)
	cfg := testConfig()
	cfg.Scoring.PreTrusted = []string{pre.String()}
	n, err := New(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.id = randomID(t)
	n.claims.self, n.earned.self = n.id, n.id
	a, b := randomID(t), randomID(t)
	if n.earned.proven(a, 100) || !n.earned.proven(pre, 0) {
		t.Fatal("proven without a pass, or a pre-trusted peer not proven")
	}
	n.earned.notePass(a, 5)
	n.earned.notePass(a, 7) // a later pass does not move the first
	if n.earned.proven(a, 5+ProvenLag-1) || !n.earned.proven(a, 5+ProvenLag) {
		t.Fatalf("pass of epoch 5: proven in epoch %d %v, in %d %v", 5+ProvenLag-1, n.earned.proven(a, 5+ProvenLag-1), 5+ProvenLag, n.earned.proven(a, 5+ProvenLag))
	}
	n.earned.notePass(b, 1)
	scores := map[peer.ID]float64{b: -1}
	n.app.scores.Store(&scores)
	if n.earned.proven(b, 10) {
		t.Fatal("a peer with a negative application score is proven")
	}
	j := n.earned.judges([]peer.ID{a, b, n.id, pre}, 10)
	if !slices.Contains(j.proven, a) || !slices.Contains(j.proven, pre) || !slices.Contains(j.unproven, b) || !slices.Contains(j.unproven, n.id) {
		t.Fatalf("judges %+v", j)
	}
}
