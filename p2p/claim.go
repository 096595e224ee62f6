package p2p

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ClaimProtocol is the stream protocol by which a peer asks another for its
// current device claim: the asker opens a stream and closes its write side
// without writing; the answerer writes its claim as one
// varint-length-prefixed frame (the encoded DeviceClaim, as it would
// publish it on the claims topic) and closes. The asker validates the
// claim as if gossiped, with the stream's remote peer as author.
//
// Why: claims travel by gossip once an epoch (and on new connections), so
// a node that has just restarted may receive a challenge from a peer whose
// claim it has not heard since, and, not counting that peer live, would
// take it for an unscheduled challenger and ignore the challenge. It asks
// the challenger for its claim instead, and judges the challenge once the
// claim is in.
const ClaimProtocol protocol.ID = "/poai/claim/1.0.0"

// ServeClaim answers ClaimProtocol requests with claim(), the encoded
// claim to hand out (nil: reset the stream). claim runs on the stream's
// goroutine.
func (p *Host) ServeClaim(claim func() []byte) {
	p.serveFrame(ClaimProtocol, func(peer.ID) []byte { return claim() })
}

// FetchClaim asks to for its claim over ClaimProtocol and returns the
// encoded claim, at most max bytes; ctx bounds it all.
func (p *Host) FetchClaim(ctx context.Context, to peer.ID, max int) ([]byte, error) {
	return p.fetchFrame(ctx, to, ClaimProtocol, "claim", max)
}
