package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/p2p"
)

func TestAuthorLimiter(t *testing.T) {
	a := newAuthorLimiter()
	now := time.Unix(1_700_000_000, 0)
	spammer, honest := peer.ID("spammer"), peer.ID("honest")
	burst := TopicRate[p2p.TopicClaims].Burst
	allowed := 0
	for range 10 * burst {
		if a.allow(spammer, p2p.TopicClaims, now) {
			allowed++
		}
	}
	if allowed != burst {
		t.Fatalf("a burst of %d claims let %d through, want the burst %d", 10*burst, allowed, burst)
	}
	if !a.allow(honest, p2p.TopicClaims, now) {
		t.Fatal("another author was limited by the spammer's burst")
	}
	if !a.allow(spammer, p2p.TopicAttestation, now) {
		t.Fatal("limits are per topic")
	}
	// The bucket refills at the sustained rate.
	if !a.allow(spammer, p2p.TopicClaims, now.Add(time.Second)) {
		t.Fatal("no refill after a second")
	}
	// Memory stays bounded whatever the number of identities.
	for i := range 3 * maxLimited {
		a.allow(peer.ID(fmt.Sprint("sybil", i)), p2p.TopicClaims, now.Add(2*time.Second))
	}
	if n := a.size(); n > maxLimited {
		t.Fatalf("limiter tracks %d authors, bound %d", n, maxLimited)
	}
	// Idle entries make room again.
	if !a.allow(peer.ID("late"), p2p.TopicClaims, now.Add(5*time.Minute)) {
		t.Fatal("idle entries were not evicted for a new author")
	}
}
