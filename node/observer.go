package node

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/poai-network/poai/scoring"
)

// Observer reads what a node has learned about the other peers, for
// devnets, sims and researchers: the score it gives each, whom it hears,
// and the challenge slots it saw each hold. Its methods are safe to call
// while the node runs.
type Observer struct{ n *Node }

// Observer returns the node's Observer.
func (n *Node) Observer() Observer { return Observer{n} }

// AppScore returns the application-specific gossipsub score this node
// gives p: its trust from the last EigenTrust round, mapped as
// [scoring] describes, or UnverifiableScore when nobody can challenge
// p's claim.
func (o Observer) AppScore(p peer.ID) float64 { return o.n.app.score(p) }

// Hears reports whether this node holds a claim of p heard within the
// last [challenge] peer_ttl_epochs (p is among its live peers).
func (o Observer) Hears(p peer.ID) bool {
	var ok bool
	o.n.ev.snapshot(func() { ok = slices.Contains(o.n.claims.livePeers(time.Now()), p) })
	return ok
}

// Slots returns how many challenger and verifier slots this node saw p
// hold in epochs [from, to).
func (o Observer) Slots(p peer.ID, from, to uint64) (challenger, verifier int) {
	return o.n.slotsSeen.counts(p, from, to)
}

// Unverifiable reports whether this node flagged p's claim as one no
// workload within the limits can test.
func (o Observer) Unverifiable(p peer.ID) bool {
	return o.n.app.isUnverifiable(p)
}

// MeshPeers returns how many peers are in this node's gossipsub mesh of
// the topic base (p2p.TopicAttestation and the like) for its own shard.
func (o Observer) MeshPeers(base string) int {
	return len(o.n.host.MeshPeers(o.n.gossip.topic(base)))
}

// Speed returns the speed test's standing of p (scoring.SpeedMonitor), if
// this node has tested any of p's proofs.
func (o Observer) Speed(p peer.ID) (scoring.SpeedState, bool) {
	return o.n.claims.speed.State(p.String())
}
