package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/poai-network/poai/p2p"
)

// TopicRate is the per-author message rate each topic's validator allows:
// a sustained rate (messages per second) and a burst. An honest node
// publishes about one claim per epoch (plus re-announcements to new
// connections), one challenge per target it is scheduled for, and a few
// attestations per epoch; the limits leave a wide margin over that and
// stop a peer that floods valid messages. Messages over the limit are
// dropped (gossipsub's ValidationIgnore) and counted, not penalized:
// gossipsub charges a rejection to the peer that forwarded the message,
// which is not necessarily its author. Invalid messages are what
// graylists a flooder (P4).
var TopicRate = map[string]struct {
	PerSecond float64
	Burst     int
}{
	p2p.TopicClaims:      {2, 20},
	p2p.TopicChallenges:  {10, 100},
	p2p.TopicCommitments: {10, 50},
	p2p.TopicReveals:     {10, 100},
	p2p.TopicOpenings:    {5, 20},
	p2p.TopicAttestation: {20, 200},
	p2p.TopicRequests:    {1, 10},
}

// maxLimited bounds the authors the rate limiter tracks; past it, idle
// entries are dropped first, so its memory stays bounded whatever the
// number of identities that write.
const maxLimited = 10000

// authorLimiter rate-limits messages per (author, topic).
type authorLimiter struct {
	mu      sync.Mutex
	buckets map[limitKey]*limited
}

type limitKey struct {
	author peer.ID
	topic  string
}

type limited struct {
	l    *rate.Limiter
	used time.Time
}

func newAuthorLimiter() *authorLimiter { return &authorLimiter{buckets: map[limitKey]*limited{}} }

// allow reports whether author may publish one more message on topic now.
func (a *authorLimiter) allow(author peer.ID, topic string, now time.Time) bool {
	r, ok := TopicRate[topic]
	if !ok {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := limitKey{author, topic}
	b := a.buckets[k]
	if b == nil {
		if len(a.buckets) >= maxLimited {
			a.evict(now)
			if len(a.buckets) >= maxLimited {
				return false // full of active authors: refuse newcomers for now
			}
		}
		b = &limited{l: rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)}
		a.buckets[k] = b
	}
	b.used = now
	return b.l.AllowN(now, 1)
}

// evict drops entries idle long enough for their bucket to be full again.
func (a *authorLimiter) evict(now time.Time) {
	for k, b := range a.buckets {
		if now.Sub(b.used) > time.Minute {
			delete(a.buckets, k)
		}
	}
}

// size returns the number of tracked (author, topic) pairs.
func (a *authorLimiter) size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.buckets)
}
