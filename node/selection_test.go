package node

import (
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/poai-network/poai/challenge"
)

// TestProven: a pass counts challenge.ProvenLag epochs after the epoch of its
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
	if n.earned.proven(a, 5+challenge.ProvenLag-1) || !n.earned.proven(a, 5+challenge.ProvenLag) {
		t.Fatalf("pass of epoch 5: proven in epoch %d %v, in %d %v", 5+challenge.ProvenLag-1, n.earned.proven(a, 5+challenge.ProvenLag-1), 5+challenge.ProvenLag, n.earned.proven(a, 5+challenge.ProvenLag))
	}
	n.earned.notePass(b, 1)
	scores := map[peer.ID]float64{b: -1}
	n.app.scores.Store(&scores)
	if n.earned.proven(b, 10) {
		t.Fatal("a peer with a negative application score is proven")
	}
	j := n.earned.judges([]peer.ID{a, b, n.id, pre}, 10)
	if !slices.Contains(j.Proven, a) || !slices.Contains(j.Proven, pre) || !slices.Contains(j.Unproven, b) || !slices.Contains(j.Unproven, n.id) {
		t.Fatalf("judges %+v", j)
	}
}
