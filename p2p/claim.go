package p2p

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio"
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
	p.host.SetStreamHandler(ClaimProtocol, func(s network.Stream) {
		defer s.Close()
		b := claim()
		if b == nil {
			_ = s.Reset()
			return
		}
		_ = s.SetWriteDeadline(time.Now().Add(directTimeout))
		if err := msgio.NewVarintWriter(s).WriteMsg(b); err != nil {
			_ = s.Reset()
		}
	})
}

// FetchClaim asks to for its claim over ClaimProtocol and returns the
// encoded claim, at most max bytes; ctx bounds it all.
func (p *Host) FetchClaim(ctx context.Context, to peer.ID, max int) ([]byte, error) {
	s, err := p.host.NewStream(network.WithAllowLimitedConn(ctx, "poai-claim"), to, ClaimProtocol)
	if err != nil {
		return nil, fmt.Errorf("open claim stream to %s: %w", to, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("claim request to %s: %w", to, err)
	}
	b, err := msgio.NewVarintReaderSize(s, max).ReadMsg()
	if err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("claim from %s: %w", to, err)
	}
	return b, nil
}
