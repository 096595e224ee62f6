package node

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// TestEpochSkewForwarderNotCharged is RoleEpochSkew's move with real
// hosts in a line, target → forwarder → node: the target signs a
// commitment to a challenge the node has accepted, naming the next epoch;
// the forwarder, which has not heard the challenge, relays it. The node
// must ignore it (epoch_mismatch), not reject it: a rejection charges the
// forwarder an invalid message (P4, −10 at the first), an honest peer
// paying for the target's message.
func TestEpochSkewForwarderNotCharged(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	topic := n.gossip.topic(p2p.TopicCommitments)
	accept := func(context.Context, peer.ID, []byte) (any, error) { return nil, nil }
	fwd, _ := bareHost(t)
	target, targetKey := bareHost(t)
	for _, h := range []*p2p.Host{fwd, target} {
		if err := h.Join(topic, accept, func(p2p.Message) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fwd.Connect(t.Context(), peer.AddrInfo{ID: n.ID(), Addrs: n.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := target.Connect(t.Context(), peer.AddrInfo{ID: fwd.ID(), Addrs: fwd.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool {
		return slices.Contains(n.host.MeshPeers(topic), fwd.ID()) && slices.Contains(fwd.MeshPeers(topic), n.ID()) &&
			slices.Contains(fwd.MeshPeers(topic), target.ID()) && slices.Contains(target.MeshPeers(topic), fwd.ID())
	}) {
		t.Fatal("the line target → forwarder → node never formed")
	}

	// The node heard the challenge (its validator accepted it); the
	// forwarder did not.
	cur := n.clock.At(time.Now())
	ch := &pb.Challenge{Version: 1, Epoch: cur, Challenger: []byte(randomID(t)), Target: []byte(target.ID()), DeadlineMs: 1000,
		IssuedUnixMs: time.Now().UnixMilli(), Workload: pb.Workload_WORKLOAD_GEMM_INT8, N: 96, K: 64, M: 32, Openings: 20,
		Nonce: make([]byte, 32), RevealHash: challenge.RevealHash([]byte("secret"))}
	chBytes, err := challenge.Marshal(ch)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.validator.Challenge(peer.ID(ch.GetChallenger()), chBytes, time.Now()); err != nil {
		t.Fatal(err)
	}
	chCID := challenge.CIDOf(chBytes)

	count := func(result, reason string) float64 {
		return testutil.ToFloat64(n.metrics.messages.WithLabelValues(p2p.TopicCommitments, result, reason))
	}
	seen := func() float64 {
		return count("ignore", "epoch_mismatch") + count("reject", "epoch_mismatch") + count("reject", "malformed")
	}
	before := inspectedScore(n, fwd.ID())
	for i := 0; seen() == 0; i++ {
		if i == 50 {
			t.Fatal("no skewed commitment reached the node")
		}
		junk := &pb.Commitment{ChallengeCid: chCID.Bytes(), Prover: []byte(target.ID()), MerkleRoot: make([]byte, 32), Leaves: 96, Epoch: cur + 1}
		_, _ = rand.Read(junk.MerkleRoot)
		if _, err := challenge.SignCommitment(targetKey, junk); err != nil {
			t.Fatal(err)
		}
		b, err := challenge.Marshal(junk)
		if err != nil {
			t.Fatal(err)
		}
		if err := target.Publish(t.Context(), topic, b); err != nil {
			t.Fatal(err)
		}
		waitFor(200*time.Millisecond, func() bool { return seen() > 0 })
	}
	after := inspectedScore(n, fwd.ID())
	if got := count("ignore", "epoch_mismatch"); got < 1 {
		t.Errorf("%v skewed commitments ignored as epoch_mismatch, want ≥ 1 (rejected: %v)", got, seen()-got)
	}
	if got := testutil.ToFloat64(n.metrics.epochMismatch.WithLabelValues(p2p.TopicCommitments)); got < 1 {
		t.Errorf("poai_messages_epoch_mismatch_total{commitments} = %v, want ≥ 1", got)
	}
	// An invalid message costs −10 at once; time in the mesh adds a little.
	if after < before-1 {
		t.Errorf("the honest forwarder's gossipsub score fell from %.2f to %.2f for the target's message", before, after)
	}
}
