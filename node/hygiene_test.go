package node

import (
	"context"
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
	h, key := bareHost(t)
	topic := n.gossip.topic(p2p.TopicAttestation)
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
	if err := a.h.Publish(t.Context(), n.gossip.topic(p2p.TopicAttestation), b); err != nil {
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

// track makes the node follow a challenge of target by challenger in
// epoch, with verifiers, as if it had received it.
func track(t *testing.T, n *Node, epoch uint64, target, challenger peer.ID, verifiers ...peer.ID) *tracked {
	t.Helper()
	ch := &pb.Challenge{Version: 1, Epoch: epoch, Challenger: []byte(challenger), Target: []byte(target), DeadlineMs: 1000,
		IssuedUnixMs: time.Now().UnixMilli()}
	_, chCID, err := challenge.MessageCID(ch)
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracked{ch: ch, cid: chCID, target: target, challenger: challenger, receivedAt: time.Now(), verifiers: verifiers}
	done := make(chan struct{})
	n.ev.post(func() { n.tk.tracked[chCID.KeyString()] = tr; close(done) })
	<-done
	return tr
}

// TestUselessAttestationEarnsNothing: well-formed attestations that the
// node has no use for — of a challenge it does not follow, or by a peer
// that is not among a followed challenge's possible verifiers — are
// ignored by the validator, so their sender earns no first-delivery
// credit (its gossipsub score does not rise from them), while one by a
// verifier of a followed challenge is accepted.
func TestUselessAttestationEarnsNothing(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	a := newAttester(t, n)
	unknown := func(i int) *pb.Attestation {
		return a.attestation(challenge.CIDOf([]byte{byte(i), byte(i >> 8), 'u'}).Bytes(), randomID(t), n.clock.At(time.Now()), time.Now())
	}
	delivered := func() float64 {
		return attestations(n, "accept", "") + attestations(n, "ignore", "unknown_challenge") + attestations(n, "ignore", "not_verifier")
	}
	// Until one got through: the gossip route is up.
	for i := 0; delivered() == 0; i++ {
		if i == 50 {
			t.Fatal("no attestation reached the node")
		}
		a.publish(t, n, unknown(1000+i))
		waitFor(200*time.Millisecond, func() bool { return delivered() > 0 })
	}
	before := inspectedScore(n, a.h.ID())
	base := delivered()

	cur := n.clock.At(time.Now())
	other := track(t, n, cur, randomID(t), randomID(t), randomID(t))
	const useless = 12
	for i := range useless {
		if i%2 == 0 {
			a.publish(t, n, unknown(i))
		} else {
			a.publish(t, n, a.attestation(other.cid.Bytes(), other.target, cur, time.Now().Add(time.Duration(i)*time.Millisecond)))
		}
	}
	if !waitFor(10*time.Second, func() bool { return delivered() >= base+useless }) {
		t.Fatalf("%v of %d attestations reached the node's validator", delivered()-base, useless)
	}
	after := inspectedScore(n, a.h.ID())
	if got := attestations(n, "accept", ""); got != 0 {
		t.Errorf("%v useless attestations accepted, want none", got)
	}
	if got := attestations(n, "ignore", "not_verifier"); got != useless/2 {
		t.Errorf("%v ignored as not_verifier, want %d", got, useless/2)
	}
	// 0.5 per first delivery: 6 for the useless attestations on the old
	// code; time in the mesh adds 0.01/s.
	if after-before > 0.5 {
		t.Errorf("the sender's score rose from %.2f to %.2f on useless attestations", before, after)
	}

	// An attestation by a verifier of a followed challenge is needed:
	// accepted (and forwarded).
	cur = n.clock.At(time.Now())
	mine := track(t, n, cur, randomID(t), randomID(t), a.h.ID())
	a.publish(t, n, a.attestation(mine.cid.Bytes(), mine.target, cur, time.Now()))
	if !waitFor(10*time.Second, func() bool { return attestations(n, "accept", "") == 1 }) {
		t.Fatalf("a verifier's attestation: %v accepted, want 1", attestations(n, "accept", ""))
	}
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
