package p2p

import (
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestShards(t *testing.T) {
	const shards, peers = 8, 800
	counts := make([]int, shards)
	for range peers {
		_, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		s := ShardOf(id, shards)
		if s < 0 || s >= shards || ShardOf(id, shards) != s {
			t.Fatalf("ShardOf(%s) = %d: out of range or unstable", id, s)
		}
		if ShardOf(id, 1) != 0 || ShardOf(id, 0) != 0 {
			t.Fatal("an unsharded network has one shard, 0")
		}
		counts[s]++
	}
	// 100 expected per shard; a binomial(800, 1/8) stays within ±45 with
	// overwhelming probability.
	for s, c := range counts {
		if c < 55 || c > 145 {
			t.Errorf("shard %d got %d of %d peers: the assignment is not uniform (%v)", s, c, peers, counts)
		}
	}
	if got := ShardTopics(0, 1); strings.Join(got, ",") != strings.Join(Topics, ",") {
		t.Errorf("unsharded topics renamed: %v", got)
	}
	seen := map[string]bool{}
	for s := range 3 {
		for _, topic := range ShardTopics(s, 3) {
			if seen[topic] {
				t.Fatalf("topic %s shared between shards", topic)
			}
			seen[topic] = true
		}
	}
	if ShardTopic(TopicClaims, 1, 4) == ShardTopic(TopicClaims, 1, 8) {
		t.Error("networks with different shard counts share a topic")
	}
}
