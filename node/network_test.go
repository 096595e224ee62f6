package node

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// TestNetworkViewMergesSharedViews: a sharing node merges the views of the
// peers that share (their edges marked self-reported) and never shows a
// view from a peer that does not; a node that does not share shows its
// own mesh only; a peer with no record is "new" (null), not 0; an asker
// over its rate is refused.
func TestNetworkViewMergesSharedViews(t *testing.T) {
	share := testConfig()
	share.P2P.ShareTopology = true
	a := startNode(t, share, nil)
	b := startNode(t, share, a)
	c := startNode(t, testConfig(), a)
	reported := func(v NetworkView, id string) bool {
		for _, n := range v.Nodes {
			if n.PeerID == id {
				return n.Reported
			}
		}
		return false
	}
	var v NetworkView
	sawNew := false
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		v = a.Network()
		for _, n := range v.Nodes {
			if n.Integrity == nil {
				sawNew = true
				if pt, ok := a.Book().PeerTrust(n.PeerID); ok && pt.Evidence > 0 {
					t.Errorf("%s shown new with evidence %v", n.PeerID, pt.Evidence)
				}
			}
		}
		if reported(v, b.ID().String()) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !sawNew {
		t.Error("no peer was ever shown new, though a started with no record")
	}
	if !v.Sharing || !reported(v, b.ID().String()) {
		t.Fatalf("b's shared view not in a's network view: %+v", v)
	}
	if reported(v, c.ID().String()) {
		t.Error("c shares nothing but is marked reported")
	}
	fromB, fromA := 0, 0
	for _, e := range v.Edges {
		switch e.From {
		case b.ID().String():
			fromB++
			if !e.SelfReported {
				t.Errorf("b's edge %+v not marked self-reported", e)
			}
		case a.ID().String():
			fromA++
			if e.SelfReported {
				t.Errorf("a's own edge %+v marked self-reported", e)
			}
		case c.ID().String():
			t.Errorf("an edge of c, which does not share: %+v", e)
		}
	}
	if fromB == 0 || fromA == 0 {
		t.Errorf("edges from a %d, from b %d: want both", fromA, fromB)
	}
	if own := c.Network(); own.Sharing || reported(own, a.ID().String()) {
		t.Errorf("c does not share, yet its view merges others': %+v", own)
	}
	for i := range viewAnswerBurst {
		if a.views.answer(c.ID()) == nil {
			t.Fatalf("answer %d within the burst refused", i)
		}
	}
	if a.views.answer(c.ID()) != nil {
		t.Error("an asker over its rate answered")
	}
}

// TestTopologyReport: a node's report names its mesh peers with scores and
// its connections, carries no address, and reports outside the limits or
// naming things that are not peer IDs are refused with errBadTopology.
func TestTopologyReport(t *testing.T) {
	a := startNode(t, testConfig(), nil)
	b := startNode(t, testConfig(), a)
	deadline := time.Now().Add(10 * time.Second)
	var r *pb.TopologyReport
	for time.Now().Before(deadline) {
		if r = topologyReport(a.host, 7); len(r.Topics) > 0 && len(r.Connected) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.Epoch != 7 || len(r.Topics) == 0 || len(r.Connected) != 1 || peer.ID(r.Connected[0]) != b.ID() {
		t.Fatalf("report %v: want epoch 7, a mesh, b connected", r)
	}
	for _, tm := range r.Topics {
		if len(tm.Links) != 1 || peer.ID(tm.Links[0].Peer) != b.ID() {
			t.Errorf("mesh of %s: %v, want b", tm.Topic, tm.Links)
		}
	}
	enc := encodeTopology(r)
	if strings.Contains(string(enc), "/ip4/") || strings.Contains(string(enc), "127.0.0.1") {
		t.Error("the report carries an address")
	}
	if got, err := decodeTopology(enc); err != nil || !proto.Equal(got, r) {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	good := []byte(b.ID())
	many := &pb.TopologyReport{}
	for range maxTopologyPeers + 1 {
		many.Connected = append(many.Connected, good)
	}
	for name, r := range map[string]*pb.TopologyReport{
		"bad peer":      {Connected: [][]byte{[]byte("not a peer")}},
		"bad link peer": {Topics: []*pb.TopicMesh{{Topic: "x", Links: []*pb.MeshLink{{Peer: []byte{1, 2}}}}}},
		"NaN score":     {Topics: []*pb.TopicMesh{{Topic: "x", Links: []*pb.MeshLink{{Peer: good, GossipScore: math.NaN()}}}}},
		"unnamed topic": {Topics: []*pb.TopicMesh{{Links: []*pb.MeshLink{{Peer: good}}}}},
		"too many":      many,
	} {
		if _, err := decodeTopology(encodeTopology(r)); !errors.Is(err, errBadTopology) {
			t.Errorf("%s: %v, want errBadTopology", name, err)
		}
	}
	if _, err := decodeTopology([]byte{0xff, 0xff}); !errors.Is(err, errBadTopology) {
		t.Errorf("garbage: %v", err)
	}
}

// TestViewBytesBounded: however many peers share views, the views kept
// stay under maxViewBytes, the oldest forgotten first.
func TestViewBytesBounded(t *testing.T) {
	v := newViewShare(nil, func() uint64 { return 0 }, nil)
	size := p2p.MaxTopologyBytes
	n := 2*maxViewBytes/size + 10
	for i := range n {
		v.keep(peer.ID(fmt.Sprint("peer", i)), sharedView{at: time.Now(), report: &pb.TopologyReport{}, size: size})
		if v.bytes > maxViewBytes {
			t.Fatalf("after %d views %d bytes kept, bound %d", i+1, v.bytes, maxViewBytes)
		}
	}
	if _, ok := v.views.Peek(peer.ID(fmt.Sprint("peer", n-1))); !ok {
		t.Error("the newest view was dropped")
	}
	if _, ok := v.views.Peek("peer0"); ok {
		t.Error("the oldest view was kept past the bound")
	}
	v.keep(peer.ID(fmt.Sprint("peer", n-1)), sharedView{size: 10})
	if want := (v.views.Len()-1)*size + 10; v.bytes != want {
		t.Errorf("replacing a view: %d bytes counted, want %d", v.bytes, want)
	}
}
