package p2p

import (
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meshTracer is a gossipsub RawTracer that keeps this host's mesh per
// topic from GRAFT and PRUNE events, the only place gossipsub exposes it,
// and drops a peer whose connection is gone: gossipsub removes a dead peer
// from every mesh without a PRUNE, tracing only OnClosedOutboundStream,
// and the host's network notifications (Host.disconnected) call
// removeIfGone. It never blocks: one short mutex per event.
//
// It also keeps when a gossipsub RPC last came from each peer (RecvRPC,
// traced before the router's graylist drops anything): traffic, unlike a
// connection's state, proves the peer reached this host lately. A
// connection whose link went down stays "connected" until its muxer's
// keepalive gives up, tens of seconds later.
type meshTracer struct {
	mu    sync.Mutex
	mesh  map[string]map[peer.ID]bool
	heard map[peer.ID]time.Time // last RPC from each peer, until it goes
}

func newMeshTracer() *meshTracer {
	return &meshTracer{mesh: make(map[string]map[peer.ID]bool), heard: make(map[peer.ID]time.Time)}
}

func (m *meshTracer) Graft(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mesh[topic] == nil {
		m.mesh[topic] = make(map[peer.ID]bool)
	}
	m.mesh[topic][p] = true
}

func (m *meshTracer) Prune(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh[topic], p)
}

// RemovePeer drops p from the mesh of every topic. It is not a RawTracer
// event (go-libp2p-pubsub no longer has one): OnClosedOutboundStream,
// where gossipsub itself drops a dead or blacklisted peer from its
// meshes, and removeIfGone call it. A peer that comes back is re-added by
// its next GRAFT.
func (m *meshTracer) RemovePeer(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.remove(p)
}

// remove drops p from every topic and forgets its last RPC; the caller
// holds mu.
func (m *meshTracer) remove(p peer.ID) {
	for _, peers := range m.mesh {
		delete(peers, p)
	}
	delete(m.heard, p)
}

// lastRPC returns when an RPC from p last arrived, or the zero time.
func (m *meshTracer) lastRPC(p peer.ID) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.heard[p]
}

// RecvRPC notes the RPC's arrival from its sender.
func (m *meshTracer) RecvRPC(rpc *pubsub.RPC) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.heard[rpc.From()] = time.Now()
}

// removeIfGone drops p from every topic unless connected reports it
// connected again, and reports whether it did. connected is read under
// the lock a GRAFT takes, so a peer that reconnected and was grafted
// before the check stays, and one grafted after it is re-added.
func (m *meshTracer) removeIfGone(p peer.ID, connected func() bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if connected() {
		return false
	}
	m.remove(p)
	return true
}

// OnClosedOutboundStream is where gossipsub drops a peer whose stream
// died (its connection closed) or that it blacklisted: it removes it from
// every mesh then, with no PRUNE event.
func (m *meshTracer) OnClosedOutboundStream(p peer.ID) { m.RemovePeer(p) }

func (m *meshTracer) Leave(topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh, topic)
}

// snapshot returns the mesh peers of every topic, sorted.
func (m *meshTracer) snapshot() map[string][]peer.ID {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]peer.ID, len(m.mesh))
	for topic, peers := range m.mesh {
		ids := make([]peer.ID, 0, len(peers))
		for p := range peers {
			ids = append(ids, p)
		}
		slices.Sort(ids)
		out[topic] = ids
	}
	return out
}

func (m *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (m *meshTracer) Join(string)                                          {}
func (m *meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (m *meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (m *meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (m *meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (m *meshTracer) ThrottlePeer(peer.ID)                                 {}
func (m *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (m *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (m *meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (m *meshTracer) UndeliverableMessage(*pubsub.Message)                 {}

var _ pubsub.RawTracer = (*meshTracer)(nil)
