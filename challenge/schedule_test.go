package challenge

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
	p := Pool{Proven: proven, Unproven: unproven}
	target, challenger := proven[0], proven[1]
	for e := range uint64(200) {
		v := VerifiersFor(e, target, challenger, p, 3)
		if len(v) != 3 || slices.ContainsFunc(v, func(id peer.ID) bool { return !slices.Contains(proven, id) }) {
			t.Fatalf("epoch %d: verifiers %v, want 3 of the proven peers", e, v)
		}
		// possibleVerifiers' k + 2: the 3 proven others, then 2 unproven.
		if w := VerifiersFor(e, target, challenger, p, 5); !slices.Equal(w[:3], v) || slices.Contains(proven, w[3]) {
			t.Fatalf("epoch %d: wide ranking %v does not extend %v with unproven peers", e, w, v)
		}
		if c := ChallengerFor(e, unproven[0], p); !slices.Contains(proven, c) {
			t.Fatalf("epoch %d: unproven challenger %s with proven peers available", e, c)
		}
		if r := ChallengerRanking(e, target, p); !slices.Contains(proven, r[1]) {
			t.Fatalf("epoch %d: second challenger %s unproven with 4 proven peers besides the target", e, r[1])
		}
	}
	// Genesis: nobody proven, the plain ranking.
	if got, want := VerifiersFor(3, target, challenger, Flat(append(slices.Clone(proven), unproven...)), 3),
		Rank("poai/1/verifier", append([]byte{0, 0, 0, 0, 0, 0, 0, 3}, append([]byte(target), challenger...)...), append(slices.Clone(proven), unproven...), target, challenger)[:3]; !slices.Equal(got, want) {
		t.Fatalf("Flat Pool: %v, plain ranking %v", got, want)
	}
	// One proven peer besides target and challenger: it verifies, and
	// unproven peers fill the other two places.
	v := VerifiersFor(9, target, challenger, Pool{Proven: proven[:3], Unproven: unproven}, 3)
	if v[0] != proven[2] || slices.Contains(proven, v[1]) || slices.Contains(proven, v[2]) {
		t.Fatalf("verifiers %v: want %s first, then two unproven peers", v, proven[2])
	}
}
