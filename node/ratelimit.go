package node

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
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

// maxLimited bounds the (author, topic) pairs the rate limiter tracks;
// past it the least recently used pair is forgotten (its bucket starts
// full again if it returns), so memory stays bounded whatever the number
// of identities that write, and a newcomer costs O(1) however full the
// limiter is.
const maxLimited = 10000

// authorLimiter rate-limits messages per (author, topic): a token bucket
// (x/time/rate) per pair, the pairs kept in an LRU (hashicorp/golang-lru's
// simplelru; its expirable variant starts a goroutine per cache that
// never ends, which a process running many nodes would accumulate).
type authorLimiter struct {
	mu      sync.Mutex
	buckets *simplelru.LRU[limitKey, *rate.Limiter]
}

type limitKey struct {
	author peer.ID
	topic  string
}

func newAuthorLimiter() *authorLimiter {
	l, err := simplelru.NewLRU[limitKey, *rate.Limiter](maxLimited, nil)
	if err != nil {
		panic(err) // only for a size under 1
	}
	return &authorLimiter{buckets: l}
}

// allow reports whether author may publish one more message on topic now.
func (a *authorLimiter) allow(author peer.ID, topic string, now time.Time) bool {
	r, ok := TopicRate[topic]
	if !ok {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := limitKey{author, topic}
	b, ok := a.buckets.Get(k)
	if !ok {
		b = rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
		a.buckets.Add(k, b)
	}
	return b.AllowN(now, 1)
}

// size returns the number of tracked (author, topic) pairs.
func (a *authorLimiter) size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buckets.Len()
}
