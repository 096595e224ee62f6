package p2p

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// goneLog records the peers a host's Config.PeerGone reported.
type goneLog struct {
	mu   sync.Mutex
	seen map[peer.ID]int
}

func (g *goneLog) add(id peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen[id]++
}

func (g *goneLog) count(id peer.ID) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seen[id]
}

// waitFor polls cond every 20 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func inMesh(h *Host, topic string, id peer.ID) bool {
	return slices.Contains(h.Mesh()[topic], id)
}

// TestPeerLeavesTopology: real hosts a, b and c on loopback graft to each
// other on one topic. Closing c drops it from a's mesh and reports it
// gone; a connection to b closed and redialled at once reports nothing;
// closed for good it drops b too, and redialling brings b back.
func TestPeerLeavesTopology(t *testing.T) {
	gone := &goneLog{seen: map[peer.ID]int{}}
	fast := func(cfg *Config) { cfg.HeartbeatInterval = 100 * time.Millisecond }
	a := newHostWith(t, func(cfg *Config) { fast(cfg); cfg.PeerGone = gone.add })
	b, c := newHostWith(t, fast), newHostWith(t, fast)
	accept := func(context.Context, peer.ID, []byte) (any, error) { return nil, nil }
	aInfo := peer.AddrInfo{ID: a.ID(), Addrs: a.Libp2p().Addrs()}
	for _, h := range []*Host{a, b, c} {
		if err := h.Join(TopicClaims, accept, func(Message) {}); err != nil {
			t.Fatal(err)
		}
		if h != a {
			if err := h.Connect(t.Context(), aInfo); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 5*time.Second, "b and c never in a's mesh", func() bool {
		return inMesh(a, TopicClaims, b.ID()) && inMesh(a, TopicClaims, c.ID())
	})

	c.Close()
	waitFor(t, 3*time.Second, "closed host c still in a's mesh or not reported gone", func() bool {
		return !inMesh(a, TopicClaims, c.ID()) && gone.count(c.ID()) > 0
	})
	if !inMesh(a, TopicClaims, b.ID()) || gone.count(b.ID()) != 0 {
		t.Fatal("b left a's mesh with c")
	}

	// A connection closed and redialled at once: the peer is not gone.
	// a redials (b may not have seen its side close yet, and a Connect of
	// b's would then return at once on the dead connection).
	bInfo := peer.AddrInfo{ID: b.ID(), Addrs: b.Libp2p().Addrs()}
	a.Libp2p().Network().ClosePeer(b.ID())
	if err := a.Connect(t.Context(), bInfo); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b not back in a's mesh after redialling at once", func() bool {
		return inMesh(a, TopicClaims, b.ID())
	})
	time.Sleep(PeerGoneDelay + 200*time.Millisecond)
	if n := gone.count(b.ID()); n != 0 {
		t.Fatalf("b reported gone %d times though it redialled at once", n)
	}

	// Disconnected for good, then back.
	a.Libp2p().Network().ClosePeer(b.ID())
	waitFor(t, 3*time.Second, "disconnected b still in a's mesh or not reported gone", func() bool {
		return !inMesh(a, TopicClaims, b.ID()) && gone.count(b.ID()) > 0
	})
	if err := a.Connect(t.Context(), bInfo); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b not back in a's mesh after reconnecting", func() bool {
		return inMesh(a, TopicClaims, b.ID())
	})
}

// TestMeshTracerRemoves: gossipsub's dropping of a closed peer
// (OnClosedOutboundStream) and removeIfGone take a peer out of every
// topic; removeIfGone keeps a peer that is connected again.
func TestMeshTracerRemoves(t *testing.T) {
	m := newMeshTracer()
	p, q := peer.ID("p"), peer.ID("q")
	for _, topic := range []string{"x", "y"} {
		m.Graft(p, topic)
		m.Graft(q, topic)
	}
	m.OnClosedOutboundStream(p)
	if s := m.snapshot(); slices.Contains(s["x"], p) || slices.Contains(s["y"], p) || !slices.Contains(s["y"], q) {
		t.Fatalf("after OnClosedOutboundStream(p): %v", s)
	}
	if m.removeIfGone(q, func() bool { return true }) {
		t.Fatal("removeIfGone removed a connected peer")
	}
	if !m.removeIfGone(q, func() bool { return false }) || len(m.snapshot()["x"]) != 0 {
		t.Fatalf("removeIfGone kept a gone peer: %v", m.snapshot())
	}
}

// TestLastRPCIsTraffic: LastRPC moves when the peer's gossip arrives, and
// forgets the peer when its connection goes.
func TestLastRPCIsTraffic(t *testing.T) {
	fast := func(cfg *Config) { cfg.HeartbeatInterval = 100 * time.Millisecond }
	a, b := newHostWith(t, fast), newHostWith(t, fast)
	if !a.LastRPC(b.ID()).IsZero() {
		t.Fatal("a stranger has a last RPC")
	}
	accept := func(context.Context, peer.ID, []byte) (any, error) { return nil, nil }
	for _, h := range []*Host{a, b} {
		if err := h.Join(TopicClaims, accept, func(Message) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Connect(t.Context(), peer.AddrInfo{ID: a.ID(), Addrs: a.Libp2p().Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b never in a's mesh", func() bool { return inMesh(a, TopicClaims, b.ID()) })
	before := time.Now()
	if err := b.Publish(t.Context(), TopicClaims, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b's message did not move its last RPC", func() bool { return a.LastRPC(b.ID()).After(before) })
	b.Close()
	waitFor(t, 5*time.Second, "a closed peer's last RPC kept", func() bool { return a.LastRPC(b.ID()).IsZero() })
}
