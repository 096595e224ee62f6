package p2p

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Gossipsub peer-score thresholds (go-libp2p-pubsub v1.1 scoring; see
// docs/gossipsub-scoring.md for the reasoning). A peer's score is its
// application score — poai's integrity verdict, AppScore — plus the
// router's own counters (time in mesh, first deliveries, invalid messages,
// behaviour penalties):
//
//   - below GossipThreshold (−10) it gets no gossip from us and its gossip
//     is ignored;
//   - below PublishThreshold (−50) our own messages are not sent to it;
//   - below GraylistThreshold (−80) everything it sends is dropped unread;
//   - at or above AcceptPXThreshold (5) the peer exchange it offers on
//     prune is followed — a trusted peer, not a newcomer;
//   - the mesh opportunistically grafts peers above
//     OpportunisticGraftThreshold (2) when its median score falls below it.
const (
	GossipThreshold             = -10
	PublishThreshold            = -50
	GraylistThreshold           = -80
	AcceptPXThreshold           = 5
	OpportunisticGraftThreshold = 2
)

// Thresholds returns the peer-score thresholds above as gossipsub's type.
func Thresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             GossipThreshold,
		PublishThreshold:            PublishThreshold,
		GraylistThreshold:           GraylistThreshold,
		AcceptPXThreshold:           AcceptPXThreshold,
		OpportunisticGraftThreshold: OpportunisticGraftThreshold,
	}
}

// ScoreParams returns poai's peer-score parameters over topics, with app
// as the application-specific score (weight 1). app must be O(1) and must
// not block: gossipsub calls it with its score lock held.
//
// Per topic: a little credit for time in the mesh (0.01/s, capped at
// 5 min) and for first deliveries (0.5 each, capped at 20, decaying over
// 10 min); −10 per invalid message squared (P4), decaying over an hour,
// so three rejected messages put a peer below the graylist. The mesh
// delivery-rate penalty (P3) is off: with few publishers per topic it
// punishes quiet honest peers. IP colocation (P6) is off: on a devnet
// every peer shares 127.0.0.1, and on the Internet one address per
// identity stops no determined Sybil (docs/adversaries.md).
func ScoreParams(topics []string, app func(peer.ID) float64) *pubsub.PeerScoreParams {
	p := &pubsub.PeerScoreParams{
		Topics: map[string]*pubsub.TopicScoreParams{},
		// The per-topic credits (P1, P2) summed over all topics are capped
		// at 13: without the cap seven topics could add 91 and lift a
		// judged cheat above the graylist.
		TopicScoreCap:               13,
		AppSpecificScore:            app,
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    0,
		IPColocationFactorThreshold: 1,
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               time.Second,
		DecayToZero:                 0.01,
		RetainScore:                 10 * time.Minute,
	}
	for _, t := range topics {
		p.Topics[t] = &pubsub.TopicScoreParams{
			TopicWeight:                     1,
			TimeInMeshWeight:                0.01,
			TimeInMeshQuantum:               time.Second,
			TimeInMeshCap:                   300,
			FirstMessageDeliveriesWeight:    0.5,
			FirstMessageDeliveriesDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
			FirstMessageDeliveriesCap:       20,
			MeshMessageDeliveriesWeight:     0,
			MeshMessageDeliveriesDecay:      0.5,
			MeshMessageDeliveriesCap:        1,
			MeshMessageDeliveriesThreshold:  1,
			MeshMessageDeliveriesWindow:     10 * time.Millisecond,
			MeshMessageDeliveriesActivation: time.Minute,
			MeshFailurePenaltyWeight:        0,
			MeshFailurePenaltyDecay:         0.5,
			InvalidMessageDeliveriesWeight:  -10,
			InvalidMessageDeliveriesDecay:   pubsub.ScoreParameterDecay(time.Hour),
		}
	}
	return p
}

// scoreBook keeps, for the API and the topology view, the last peer
// scores gossipsub reported (WithPeerScoreInspect) less their
// application-specific component (weight 1, ScoreParams): the router's
// own counters, to which PeerScores adds the application score of the
// moment.
type scoreBook struct {
	mu       sync.RWMutex
	counters map[peer.ID]float64
}

func newScoreBook() *scoreBook { return &scoreBook{counters: map[peer.ID]float64{}} }

func (s *scoreBook) update(m map[peer.ID]*pubsub.PeerScoreSnapshot) {
	c := make(map[peer.ID]float64, len(m))
	for k, v := range m {
		c[k] = v.Score - v.AppSpecificScore
	}
	s.mu.Lock()
	s.counters = c
	s.mu.Unlock()
}

// PeerScores returns gossipsub's score of every peer it scores: the
// router's counters as of its latest inspection (every
// Config.ScoreInspectInterval), with the application score read now
// (Config.AppScore). The router itself reads the application score on
// every scoring, so this is what it acts on; with the inspected total, a
// read just after a trust round showed the round before (poai-sim's
// report, inspected every 10 s, graylisted cheaters a round late).
func (h *Host) PeerScores() map[peer.ID]float64 {
	h.scores.mu.RLock()
	defer h.scores.mu.RUnlock()
	out := make(map[peer.ID]float64, len(h.scores.counters))
	for k, v := range h.scores.counters {
		out[k] = v + h.app(k)
	}
	return out
}
