package node

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/poai-network/poai/scoring"
)

// appScores is what gossipsub's peer scoring reads of this node's trust:
// each peer's application score from the last trust round (AppScore, the
// router's routingRole applied, PreTrustedBonus added), the peers whose
// claims nobody can challenge (UnverifiableScore), and the poai_peer_score
// series. Its methods are safe from any goroutine, and score, which
// gossipsub calls on its own, never blocks. The zero value scores every
// peer 0 and keeps no series.
type appScores struct {
	routing    routingRole          // nil: the trust round as it is
	preTrusted []string             // [scoring] pre_trusted peer IDs
	gauge      *prometheus.GaugeVec // poai_peer_score, or nil

	scores       atomic.Pointer[map[peer.ID]float64]
	unverifiable atomic.Pointer[map[peer.ID]bool]
	mu           sync.Mutex
	epoch        *uint64 // of the round scores holds
	// gaugeMu orders setGauges and gone: a trust round that saw a peer
	// connected sets its series before the peer's disconnection deletes
	// it, never after.
	gaugeMu sync.Mutex
}

// score is gossipsub's AppSpecificScore: a map lookup in the snapshot the
// last trust round published.
func (a *appScores) score(p peer.ID) float64 {
	if a.isUnverifiable(p) {
		return UnverifiableScore
	}
	if m := a.scores.Load(); m != nil {
		return (*m)[p]
	}
	return 0
}

// isUnverifiable reports whether p's claim is flagged FlagUnverifiable.
func (a *appScores) isUnverifiable(p peer.ID) bool {
	m := a.unverifiable.Load()
	return m != nil && (*m)[p]
}

// set publishes the scores of trust round v, unless a later round's are
// published already (rounds run off the loop and may finish out of order).
func (a *appScores) set(v scoring.TrustVector) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.epoch != nil && v.Epoch < *a.epoch {
		return // an older round finished after a newer one
	}
	e := v.Epoch
	a.epoch = &e
	if a.routing != nil {
		v = a.routing.appScores(v)
	}
	m := make(map[peer.ID]float64, len(v.Peers))
	min := scoring.DefaultTrustParams().MinEvidence
	for id, pt := range v.Peers {
		p, err := peer.Decode(id)
		if err != nil {
			continue
		}
		m[p] = AppScore(pt, min)
	}
	for _, id := range a.preTrusted {
		if p, err := peer.Decode(id); err == nil {
			m[p] += PreTrustedBonus
		}
	}
	a.scores.Store(&m)
}

// setUnverifiable records (copy on write) whether p's claim is
// unverifiable.
func (a *appScores) setUnverifiable(p peer.ID, bad bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := map[peer.ID]bool{}
	if m := a.unverifiable.Load(); m != nil {
		old = *m
	}
	if old[p] == bad {
		return
	}
	m := maps.Clone(old)
	if bad {
		m[p] = true
	} else {
		delete(m, p)
	}
	a.unverifiable.Store(&m)
}

// setGauges sets poai_peer_score from trust round v for self and the
// peers connected reports, and deletes the series of the scored peers it
// does not: a peer gone from the network leaves the metrics (gone deletes
// its series as it goes) and a trust round does not bring it back.
func (a *appScores) setGauges(v scoring.TrustVector, self peer.ID, connected func(peer.ID) bool) {
	if a.gauge == nil {
		return
	}
	a.gaugeMu.Lock()
	defer a.gaugeMu.Unlock()
	for id, pt := range v.Peers {
		p, err := peer.Decode(id)
		if err == nil && (p == self || connected(p)) {
			a.gauge.WithLabelValues(id).Set(pt.Score)
		} else {
			a.gauge.DeleteLabelValues(id)
		}
	}
}

// gone is p2p.Config.PeerGone: the host has had no connection to id for a
// moment, and its series goes. (Should it reconnect just now, the next
// trust round sets its score again.)
func (a *appScores) gone(id peer.ID) {
	if a.gauge == nil {
		return
	}
	a.gaugeMu.Lock()
	defer a.gaugeMu.Unlock()
	a.gauge.DeleteLabelValues(id.String())
}
