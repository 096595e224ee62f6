package node

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// attester is a bare libp2p host that publishes attestations to a node
// over gossip, as any peer could.
type attester struct {
	key crypto.PrivKey
	h   *p2p.Host
}

// newAttester starts a host, joins the node's attestation topic and
// waits until each side saw the other subscribe.
func newAttester(t *testing.T, n *Node) *attester {
	t.Helper()
	key, err := p2p.LoadOrCreateKey(filepath.Join(t.TempDir(), "attester.key"))
	if err != nil {
		t.Fatal(err)
	}
	pc := p2p.DefaultConfig()
	pc.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	pc.MDNS = false
	h, err := p2p.New(key, pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	topic := n.topic(p2p.TopicAttestation)
	accept := func(context.Context, peer.ID, []byte) (any, error) { return nil, nil }
	if err := h.Join(topic, accept, func(p2p.Message) {}); err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(t.Context(), peer.AddrInfo{ID: n.ID(), Addrs: n.Addrs()}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(h.MeshPeers(topic), n.ID()) || !slices.Contains(n.host.MeshPeers(topic), h.ID()); {
		if time.Now().After(deadline) {
			t.Fatal("the node and the attester never saw each other subscribe")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &attester{key: key, h: h}
}

// attestation returns a well-formed attestation by a of the challenge
// chCID of target; issued tells copies apart.
func (a *attester) attestation(chCID []byte, target peer.ID, epoch uint64, issued time.Time) *pb.Attestation {
	return &pb.Attestation{ChallengeCid: chCID, Target: []byte(target), Verifier: []byte(a.h.ID()), Epoch: epoch,
		Verdict: pb.Verdict_VERDICT_PASS, LatencyMs: 10, DeadlineMs: 1000, DataAccuracy: 1, IssuedUnixMs: issued.UnixMilli()}
}

func (a *attester) publish(t *testing.T, n *Node, m *pb.Attestation) {
	t.Helper()
	b, err := challenge.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	a.publishBytes(t, n, b)
}

func (a *attester) publishBytes(t *testing.T, n *Node, b []byte) {
	t.Helper()
	if err := a.h.Publish(t.Context(), n.topic(p2p.TopicAttestation), b); err != nil {
		t.Fatal(err)
	}
}

// attestations returns the node's count of attestations with result and
// reason in poai_messages_total.
func attestations(n *Node, result, reason string) float64 {
	return testutil.ToFloat64(n.metrics.messages.WithLabelValues(p2p.TopicAttestation, result, reason))
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// inspectedScore returns the node's gossipsub score of id after the next
// score inspection (every second in tests).
func inspectedScore(n *Node, id peer.ID) float64 {
	time.Sleep(1500 * time.Millisecond)
	return n.host.PeerScores()[id]
}

// TestRejectedOnce: one malformed attestation published twice by its
// author (the same payload in two envelopes, so two gossipsub message
// IDs) is one offence: the node rejects the first copy and ignores the
// second, counting one rejection, and the sender's gossipsub score takes
// one invalid-message penalty (−10), not two (−10·2² = −40).
func TestRejectedOnce(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	a := newAttester(t, n)
	delivered := func() float64 {
		return attestations(n, "accept", "") + attestations(n, "ignore", "unknown_challenge")
	}
	for i := 0; delivered() == 0; i++ {
		if i == 50 {
			t.Fatal("no attestation reached the node")
		}
		a.publish(t, n, a.attestation(challenge.CIDOf([]byte{byte(i)}).Bytes(), randomID(t), n.clock.At(time.Now()), time.Now()))
		waitFor(200*time.Millisecond, func() bool { return delivered() > 0 })
	}
	before := inspectedScore(n, a.h.ID())

	bad := a.attestation(challenge.CIDOf([]byte("bad")).Bytes(), randomID(t), n.clock.At(time.Now()), time.Now())
	bad.DataAccuracy = 2 // out of [0, 1]: malformed
	b, err := challenge.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	a.publishBytes(t, n, b)
	a.publishBytes(t, n, b)
	rejected := func() float64 { return attestations(n, "reject", "malformed") }
	if !waitFor(10*time.Second, func() bool { return rejected()+attestations(n, "ignore", "repeat") >= 2 }) {
		t.Fatalf("%v rejected, %v ignored as repeats: both copies never reached the validator", rejected(), attestations(n, "ignore", "repeat"))
	}
	after := inspectedScore(n, a.h.ID())
	if got := rejected(); got != 1 {
		t.Errorf("one offence counted %v times in poai_messages_total, want 1", got)
	}
	if got := attestations(n, "ignore", "repeat"); got != 1 {
		t.Errorf("%v repeats ignored, want 1", got)
	}
	if drop := before - after; drop < 5 || drop > 20 {
		t.Errorf("the sender's score fell by %.2f (from %.2f to %.2f), want one invalid-message penalty (10)", drop, before, after)
	}
}
