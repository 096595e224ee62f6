package p2p

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestDirectReachesPeerGossipShuns: a peer the sender scores below
// PublishThreshold gets none of the sender's gossip, but does get a
// direct message on a topic it accepts directly; topics it does not
// accept directly and payloads its validator rejects never reach its
// handler.
func TestDirectReachesPeerGossipShuns(t *testing.T) {
	var shunned atomic.Value // peer.ID the sender scores -60
	shunned.Store(peer.ID(""))
	a := newHostWith(t, func(cfg *Config) {
		cfg.AppScore = func(p peer.ID) float64 {
			if p == shunned.Load().(peer.ID) {
				return PublishThreshold - 10
			}
			return 0
		}
	})
	b := newHost(t, a.Addrs()[0].String())
	shunned.Store(b.ID())

	var rejected atomic.Int32
	validator := testValidator(&rejected)
	got := make(chan Message, 10)
	for _, topic := range []string{TopicChallenges, TopicClaims} {
		if err := a.Join(topic, validator, func(Message) {}); err != nil {
			t.Fatal(err)
		}
		if err := b.Join(topic, validator, func(m Message) {
			if m.From != b.ID() {
				got <- m
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AcceptDirect(TopicChallenges); err != nil {
		t.Fatal(err)
	}
	if err := b.AcceptDirect("/poai/1/not-joined"); !errors.Is(err, ErrNotDirect) {
		t.Fatalf("AcceptDirect on a topic never joined: %v, want ErrNotDirect", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(a.ConnectedPeers()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond) // a heartbeat: the mesh would form if it could

	ctx := t.Context()
	if err := a.Publish(ctx, TopicChallenges, []byte("gossip")); err != nil {
		t.Fatal(err)
	}
	_ = a.SendDirect(ctx, b.ID(), TopicClaims, []byte("claim, direct"))
	_ = a.SendDirect(ctx, b.ID(), TopicChallenges, []byte("bad"))
	select {
	case m := <-got:
		t.Fatalf("before any valid direct message, b got %q on %s", m.Data, m.Topic)
	case <-time.After(2500 * time.Millisecond):
	}
	if rejected.Load() == 0 {
		t.Fatal("b's validator never saw the bad direct message")
	}
	if err := a.SendDirect(ctx, b.ID(), TopicChallenges, []byte("direct")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic != TopicChallenges || m.From != a.ID() || m.Decoded != "direct from "+a.ID().String()+" by direct" {
			t.Fatalf("got %q on %s from %s (%v)", m.Data, m.Topic, m.From, m.Decoded)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("direct message not delivered")
	}
}
