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

// serveFrame answers requests of a one-frame protocol (ClaimProtocol,
// TopologyProtocol): the asker opens a stream and closes its write side;
// the answerer writes answer(asker) as one varint-length-prefixed frame
// and closes. A nil answer resets the stream. answer runs on the stream's
// goroutine.
func (p *Host) serveFrame(id protocol.ID, answer func(from peer.ID) []byte) {
	p.host.SetStreamHandler(id, func(s network.Stream) {
		defer s.Close()
		b := answer(s.Conn().RemotePeer())
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

// fetchFrame asks to for the one frame of protocol id (what names it in
// errors) and returns it, at most max bytes; ctx bounds it all.
func (p *Host) fetchFrame(ctx context.Context, to peer.ID, id protocol.ID, what string, max int) ([]byte, error) {
	s, err := p.host.NewStream(network.WithAllowLimitedConn(ctx, "poai-"+what), to, id)
	if err != nil {
		return nil, fmt.Errorf("open %s stream to %s: %w", what, to, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("%s request to %s: %w", what, to, err)
	}
	b, err := msgio.NewVarintReaderSize(s, max).ReadMsg()
	if err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("%s from %s: %w", what, to, err)
	}
	return b, nil
}
