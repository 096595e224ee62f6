package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// inTopology reports whether id is in n's mesh of any topic (the API's
// topology view).
func inTopology(n *Node, id peer.ID) bool {
	for _, peers := range n.Topology().Mesh {
		if slices.ContainsFunc(peers, func(p MeshPeer) bool { return p.PeerID == id.String() }) {
			return true
		}
	}
	return false
}

// scoreSeries reports whether n's registry has a poai_peer_score series
// for id.
func scoreSeries(t *testing.T, n *Node, id peer.ID) bool {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "poai_peer_score" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "peer" && l.GetValue() == id.String() {
					return true
				}
			}
		}
	}
	return false
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPeerGoneLeavesTopologyAndMetrics: a real host x grafts to node a on
// the claims topic and gets a score series from a trust round. Its
// connection closed, it leaves a's topology and its series is deleted;
// reconnected, it is back in the topology and the next trust round gives
// it a series again. A scored peer a is not connected to gets none.
func TestPeerGoneLeavesTopologyAndMetrics(t *testing.T) {
	a := startNode(t, testConfig(), nil)
	x, _ := bareHost(t)
	accept := func(context.Context, peer.ID, []byte) (any, error) { return nil, nil }
	if err := x.Join(a.gossip.topic(p2p.TopicClaims), accept, func(p2p.Message) {}); err != nil {
		t.Fatal(err)
	}
	xInfo := peer.AddrInfo{ID: x.ID(), Addrs: x.Libp2p().Addrs()}
	if err := a.host.Connect(t.Context(), xInfo); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "x never in a's topology", func() bool { return inTopology(a, x.ID()) })

	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := peer.IDFromPublicKey(pub)
	round := scoring.TrustVector{Peers: map[string]scoring.PeerTrust{
		x.ID().String(): {Score: 0.7}, a.ID().String(): {Score: 0.9}, stranger.String(): {Score: 0.5}}}
	a.app.setGauges(round, a.id, a.host.Connected)
	if !scoreSeries(t, a, x.ID()) || !scoreSeries(t, a, a.ID()) {
		t.Fatal("no score series for connected x or for a itself")
	}
	if scoreSeries(t, a, stranger) {
		t.Fatal("a score series for a peer a is not connected to")
	}

	a.host.Libp2p().Network().ClosePeer(x.ID())
	waitUntil(t, 3*time.Second, "disconnected x still in a's topology or metrics", func() bool {
		return !inTopology(a, x.ID()) && !scoreSeries(t, a, x.ID())
	})
	a.app.setGauges(round, a.id, a.host.Connected) // a trust round does not bring a gone peer back
	if scoreSeries(t, a, x.ID()) {
		t.Fatal("a trust round gave disconnected x a score series")
	}

	if err := a.host.Connect(t.Context(), xInfo); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "reconnected x not back in a's topology", func() bool { return inTopology(a, x.ID()) })
	a.app.setGauges(round, a.id, a.host.Connected)
	if !scoreSeries(t, a, x.ID()) {
		t.Fatal("reconnected x has no score series after a trust round")
	}
}
