package p2p

import (
	"math"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestPeerScoresReadAppScoreNow: PeerScores carries the router's counters
// from its latest inspection but the application score of the moment, so
// a trust round shows at once rather than an inspection interval later.
func TestPeerScoresReadAppScoreNow(t *testing.T) {
	var app atomic.Int64 // the application score a gives every peer
	a := newHostWith(t, func(cfg *Config) {
		cfg.ScoreInspectInterval = 2 * time.Second
		cfg.AppScore = func(peer.ID) float64 { return float64(app.Load()) }
	})
	b := newHost(t, a.Addrs()[0].String())

	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, ok := a.PeerScores()[b.ID()]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never scored by a")
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := a.PeerScores()[b.ID()]
	app.Store(-500) // a trust round graylists b
	after := a.PeerScores()[b.ID()]
	if math.Abs(after-before-(-500)) > 1e-9 {
		t.Fatalf("score of b %.3f before the application score fell by 500, %.3f just after: want the fall at once", before, after)
	}
	if after >= GraylistThreshold {
		t.Fatalf("score of b %.3f, want below the graylist (%v)", after, GraylistThreshold)
	}
}

// The seen-messages TTL outlasts, by ten times, the span a message is
// advertised in gossip, whatever the heartbeat: a message, rejected ones
// included, is never fetched and validated again while a peer can still
// advertise it.
func TestSeenTTLOutlastsGossip(t *testing.T) {
	history := pubsub.DefaultGossipSubParams().HistoryLength
	for _, hb := range []time.Duration{0, 100 * time.Millisecond, time.Second, 10 * time.Second, time.Minute} {
		got := seenTTL(hb)
		if hb == 0 {
			hb = pubsub.DefaultGossipSubParams().HeartbeatInterval
		}
		if got < SeenMessagesTTL {
			t.Errorf("heartbeat %v: seen TTL %v < %v", hb, got, SeenMessagesTTL)
		}
		if window := time.Duration(history) * hb; got < 10*window {
			t.Errorf("heartbeat %v: seen TTL %v, gossip window %v", hb, got, window)
		}
	}
}
