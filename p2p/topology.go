package p2p

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TopologyProtocol is the opt-in stream protocol by which a peer shares
// its own gossip view: the asker opens a stream and closes its write side
// without writing; the answerer writes one varint-length-prefixed frame,
// an encoded TopologyReport (challenge/pb, built and checked by node) (its mesh per topic with its gossipsub
// score of each mesh peer, and the peers it is connected to, no
// addresses), and closes. A peer that does not share its view does not
// register the protocol; one that does answers each asker at a bounded
// rate (its own policy) and resets the stream beyond it.
//
// Why opt-in: a peer's mesh tells an eclipse attacker whom to displace, so
// sharing it is the operator's choice (on in devnets, off by default for
// `poai run`). What a peer reports about itself is self-reported: shown
// and labelled so, never used as evidence.
const TopologyProtocol protocol.ID = "/poai/topology/1.0.0"

// MaxTopologyBytes bounds an encoded report FetchTopology accepts.
const MaxTopologyBytes = 64 << 10

// ServeTopology answers TopologyProtocol requests with report(asker), the
// encoded report to hand out (nil: reset the stream, e.g. over the
// asker's rate). Calling it is what makes the node share its view.
func (p *Host) ServeTopology(report func(asker peer.ID) []byte) {
	p.serveFrame(TopologyProtocol, report)
}

// FetchTopology asks to for its topology report over TopologyProtocol and
// returns the encoded report, at most MaxTopologyBytes; ctx bounds it all.
func (p *Host) FetchTopology(ctx context.Context, to peer.ID) ([]byte, error) {
	return p.fetchFrame(ctx, to, TopologyProtocol, "topology", MaxTopologyBytes)
}

// SharesTopology reports whether id announced TopologyProtocol in
// identify (so asking it is worth a stream).
func (p *Host) SharesTopology(id peer.ID) bool {
	ok, err := p.host.Peerstore().SupportsProtocols(id, TopologyProtocol)
	return err == nil && len(ok) > 0
}
