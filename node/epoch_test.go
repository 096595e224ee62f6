package node

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// TestReplayedEpochIgnored: a peer publishes, by gossip, a signed
// commitment, an opening and a reveal of an epoch before the node's
// window (what a replay of an old exchange looks like once the replay
// cache forgot it), then the same messages of the current epoch. The node
// ignores the old ones without a penalty and counts each in
// poai_messages_out_of_epoch_total; it accepts the current ones.
func TestReplayedEpochIgnored(t *testing.T) {
	n := startNode(t, testConfig(), nil)

	h, key := bareHost(t)
	topics := []string{p2p.TopicCommitments, p2p.TopicOpenings, p2p.TopicReveals}
	accept := func(context.Context, peer.ID, []byte) (any, error) { return nil, nil }
	for _, topic := range topics {
		if err := h.Join(n.gossip.topic(topic), accept, func(p2p.Message) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Connect(t.Context(), peer.AddrInfo{ID: n.ID(), Addrs: n.Addrs()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	// Each side knows the other subscribed: the replayer's stream to the
	// node is open (its subscriptions came over it).
	subscribed := func(topic string) bool {
		return slices.Contains(h.MeshPeers(n.gossip.topic(topic)), n.ID()) && slices.Contains(n.host.MeshPeers(n.gossip.topic(topic)), h.ID())
	}
	for !allOf(topics, subscribed) {
		if time.Now().After(deadline) {
			t.Fatal("the node and the replayer never saw each other subscribe")
		}
		time.Sleep(50 * time.Millisecond)
	}

	lo, _ := n.validator.EpochWindow(time.Now())
	if lo < 10 {
		t.Fatalf("window starts at epoch %d: the test needs a network past epoch 10", lo)
	}
	cur := n.clock.At(time.Now())
	chCID := challenge.CIDOf([]byte("a challenge this node never saw"))
	publish := func(e uint64) {
		t.Helper()
		root := make([]byte, 32)
		rand.Read(root)
		com := &pb.Commitment{ChallengeCid: chCID.Bytes(), Prover: []byte(h.ID()), MerkleRoot: root, Leaves: 8, Epoch: e}
		comCID, err := challenge.SignCommitment(key, com)
		if err != nil {
			t.Fatal(err)
		}
		comBytes, err := challenge.Marshal(com)
		if err != nil {
			t.Fatal(err)
		}
		secret := make([]byte, 32)
		rand.Read(secret)
		for topic, m := range map[string]proto.Message{
			p2p.TopicCommitments: com,
			p2p.TopicOpenings: &pb.Opening{ChallengeCid: chCID.Bytes(), CommitmentCid: comCID.Bytes(), Prover: []byte(h.ID()), Epoch: e,
				Rows: []*pb.RowOpening{{Index: 1, Values: make([]byte, 16)}}},
			p2p.TopicReveals: &pb.Reveal{ChallengeCid: chCID.Bytes(), Challenger: []byte(h.ID()), Secret: secret, Commitment: comBytes, Epoch: e},
		} {
			b, err := challenge.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Publish(t.Context(), n.gossip.topic(topic), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func(topic string) (old, accepted float64) {
		return testutil.ToFloat64(n.metrics.outOfEpoch.WithLabelValues(topic)),
			testutil.ToFloat64(n.metrics.messages.WithLabelValues(topic, "accept", ""))
	}
	// wait waits until every topic counts old out of epoch and more than
	// accepted[topic] accepted, and reports whether it did.
	wait := func(old float64, accepted map[string]float64, d time.Duration) bool {
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if allOf(topics, func(topic string) bool { o, a := count(topic); return o == old && a > accepted[topic] }) {
				return true
			}
		}
		return false
	}
	// Current messages until one of each topic got through: the gossip
	// route is up (the first messages on a new connection may be lost).
	for deadline := time.Now().Add(10 * time.Second); !wait(0, nil, 300*time.Millisecond); {
		if time.Now().After(deadline) {
			t.Fatal("no current message reached the node")
		}
		publish(cur)
	}
	before := map[string]float64{}
	for _, topic := range topics {
		_, before[topic] = count(topic)
	}
	publish(lo - 10) // a replay from before the window
	publish(cur)
	if !wait(1, before, 10*time.Second) {
		for _, topic := range topics {
			old, accepted := count(topic)
			t.Errorf("%s: %v out of epoch, %v accepted", topic, old, accepted)
		}
		t.FailNow()
	}
	for _, topic := range topics {
		if got := testutil.ToFloat64(n.metrics.messages.WithLabelValues(topic, "ignore", "out_of_epoch")); got != 1 {
			t.Errorf("%s: %v ignored as out_of_epoch in poai_messages_total, want 1", topic, got)
		}
		for _, reason := range []string{"malformed", "out_of_epoch", "stale", "bad_signature", "signer"} {
			if got := testutil.ToFloat64(n.metrics.messages.WithLabelValues(topic, "reject", reason)); got != 0 {
				t.Errorf("%s: %v rejected (%s), want none", topic, got, reason)
			}
		}
	}
}

func allOf[T any](xs []T, f func(T) bool) bool {
	for _, x := range xs {
		if !f(x) {
			return false
		}
	}
	return true
}

// TestEpochMismatchDropped: a commitment, opening or reveal that reached
// the node before its challenge (so the validator could not compare
// epochs) and names another epoch than the challenge's is dropped once the
// challenge is known, and counted.
func TestEpochMismatchDropped(t *testing.T) {
	n, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	target, challenger := randomID(t), randomID(t)
	ch := &pb.Challenge{Version: 1, Epoch: 7, Challenger: []byte(challenger), Target: []byte(target)}
	_, chCID, err := challenge.MessageCID(ch)
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracked{ch: ch, cid: chCID, target: target, challenger: challenger}
	n.tk.tracked[chCID.KeyString()] = tr
	com := &pb.Commitment{ChallengeCid: chCID.Bytes(), Prover: []byte(target), MerkleRoot: make([]byte, 32), Leaves: 1, Epoch: 6}
	n.tk.acceptCommitment(tr, target, com, challenge.CIDOf([]byte("com")), time.Now())
	n.tk.onOpening(target, decoded{msg: &pb.Opening{ChallengeCid: chCID.Bytes(), Prover: []byte(target), Epoch: 8}}, time.Now())
	n.tk.onReveal(challenger, decoded{msg: &pb.Reveal{ChallengeCid: chCID.Bytes(), Challenger: []byte(challenger), Epoch: 6}}, time.Now())
	if tr.com != nil || tr.op != nil || tr.secret != nil {
		t.Fatal("a message of another epoch than its challenge's was taken")
	}
	for _, topic := range []string{p2p.TopicCommitments, p2p.TopicOpenings, p2p.TopicReveals} {
		if got := testutil.ToFloat64(n.metrics.epochMismatch.WithLabelValues(topic)); got != 1 {
			t.Errorf("%s: %v counted as epoch mismatch, want 1", topic, got)
		}
	}
}
