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
	// A newcomer always gets a bucket: the least recently used goes.
	if !a.allow(peer.ID("late"), p2p.TopicClaims, now.Add(2*time.Second)) {
		t.Fatal("a new author was refused by a full limiter")
	}
}

// BenchmarkAuthorLimiterFull: a new author's first message with the
// limiter full (maxLimited pairs), the cost every identity of a Sybil
// flood imposes.
func BenchmarkAuthorLimiterFull(b *testing.B) {
	a := newAuthorLimiter()
	now := time.Unix(1_700_000_000, 0)
	for i := range maxLimited {
		a.allow(peer.ID(fmt.Sprint("p", i)), p2p.TopicClaims, now)
	}
	ids := make([]peer.ID, b.N)
	for i := range ids {
		ids[i] = peer.ID(fmt.Sprint("new", i))
	}
	b.ResetTimer()
	for i := range b.N {
		a.allow(ids[i], p2p.TopicClaims, now)
	}
}
