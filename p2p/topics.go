package p2p

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Versioned topic names: /poai/<protocol version>/<message kind>. A breaking
// change to any wire message bumps the version of every topic.
const (
	ProtocolVersion  = "1"
	TopicClaims      = "/poai/" + ProtocolVersion + "/claims"
	TopicChallenges  = "/poai/" + ProtocolVersion + "/challenges"
	TopicCommitments = "/poai/" + ProtocolVersion + "/commitments"
	TopicOpenings    = "/poai/" + ProtocolVersion + "/openings"
	TopicReveals     = "/poai/" + ProtocolVersion + "/reveals"
	TopicRequests    = "/poai/" + ProtocolVersion + "/requests"
	TopicAttestation = "/poai/" + ProtocolVersion + "/attestations"
	// MDNSServiceTag is the service name peers advertise over mDNS.
	MDNSServiceTag = "poai-" + ProtocolVersion
	// UserAgent is announced through identify.
	UserAgent = "poai/" + ProtocolVersion
)

// Topics lists every topic a full node joins, in the order it joins them.
var Topics = []string{TopicClaims, TopicChallenges, TopicCommitments, TopicReveals, TopicOpenings, TopicAttestation, TopicRequests}

// ShardOf returns the shard of peer id among shards: the first 8 bytes of
// SHA-256("poai/1/shard" ‖ id), big-endian, modulo shards; 0 when shards
// ≤ 1. A peer proves, verifies and attests only inside its shard, so a
// network of N peers in shards of s costs each peer O(s) messages per
// epoch instead of O(N) (the subnet idea of Ethereum's attestation
// subnets). The assignment is fixed by the peer ID: a peer cannot choose
// its shard without grinding keys, which docs/sim.md discusses.
func ShardOf(id peer.ID, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := sha256.Sum256(append([]byte("poai/1/shard"), id...))
	return int(binary.BigEndian.Uint64(h[:8]) % uint64(shards))
}

// ShardTopic returns the name of base (one of Topics) in shard of shards:
// base itself when shards ≤ 1, else base + "/<shard>-of-<shards>", so that
// peers configured with different shard counts never share a topic.
func ShardTopic(base string, shard, shards int) string {
	if shards <= 1 {
		return base
	}
	return fmt.Sprintf("%s/%d-of-%d", base, shard, shards)
}

// ShardTopics returns Topics renamed for shard of shards, in order.
func ShardTopics(shard, shards int) []string {
	out := make([]string, len(Topics))
	for i, t := range Topics {
		out[i] = ShardTopic(t, shard, shards)
	}
	return out
}
