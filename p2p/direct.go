package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio"
)

// DirectProtocol is the stream protocol that carries one topic message
// straight to one peer, beside gossip: the sender writes two
// varint-length-prefixed frames, the topic name (at most maxTopicLen bytes)
// and the payload (at most Config.MaxMessageSize bytes), and closes its
// side; the receiver validates the message and answers one byte, 0 when
// its validator accepted it and 1 when not, and closes.
//
// Why: gossipsub only forwards to mesh peers and flood-publishes only to
// peers above PublishThreshold, so a peer whose score fell (a partition
// made it miss challenges) or whose mesh links are in prune backoff hears
// the very challenges that could clear it late or never. A challenger
// therefore also hands its challenge to the target directly.
const DirectProtocol protocol.ID = "/poai/direct/1.0.0"

const maxTopicLen = 256

// directTimeout bounds reading one inbound direct message.
const directTimeout = 10 * time.Second

// ErrNotDirect is returned by AcceptDirect for a topic this host has not
// joined, and by SendDirect when the receiver refused the topic.
var ErrNotDirect = errors.New("topic not accepted over the direct protocol")

// ErrDirectRejected is returned by SendDirect when the receiver's
// validator did not accept the message.
var ErrDirectRejected = errors.New("direct message not accepted by its receiver")

const (
	directAccepted byte = 0
	directRejected byte = 1
)

type joined struct {
	v      Validator
	h      Handler
	direct bool
}

// AcceptDirect lets peers deliver messages of topic (already joined) over
// DirectProtocol. An inbound message goes through topic's Validator, with
// the stream's remote peer (authenticated by the connection's security
// handshake) as author, and, if accepted, to topic's Handler — possibly
// concurrently with gossip deliveries, and possibly as well as a gossip
// copy of the same message: the Validator's ctx says which path a message
// took (ViaDirect), and the handler must tolerate the duplicate.
func (p *Host) AcceptDirect(topic string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	j, ok := p.joined[topic]
	if !ok {
		return fmt.Errorf("%w: %s is not joined", ErrNotDirect, topic)
	}
	j.direct = true
	p.joined[topic] = j
	return nil
}

type directKey struct{}

// ViaDirect reports whether a Validator's ctx is that of a message that
// came over DirectProtocol rather than gossip.
func ViaDirect(ctx context.Context) bool {
	v, _ := ctx.Value(directKey{}).(bool)
	return v
}

// SendDirect delivers data, a message of topic, to peer to over
// DirectProtocol, dialing it if needed (at the addresses in the
// peerstore). It returns nil once to's validator accepted the message,
// ErrDirectRejected when it did not, ErrNotDirect when to does not take
// topic directly, or the stream's error; ctx bounds it all.
func (p *Host) SendDirect(ctx context.Context, to peer.ID, topic string, data []byte) error {
	if len(topic) > maxTopicLen {
		return fmt.Errorf("%w: topic name of %d bytes", ErrNotDirect, len(topic))
	}
	if len(data) > p.cfg.MaxMessageSize {
		return fmt.Errorf("direct message of %d bytes over the %d-byte limit", len(data), p.cfg.MaxMessageSize)
	}
	s, err := p.host.NewStream(network.WithAllowLimitedConn(ctx, "poai-direct"), to, DirectProtocol)
	if err != nil {
		return fmt.Errorf("open direct stream to %s: %w", to, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	w := msgio.NewVarintWriter(s)
	err = w.WriteMsg([]byte(topic))
	if err == nil {
		err = w.WriteMsg(data)
	}
	if err == nil {
		err = s.CloseWrite()
	}
	if err != nil {
		_ = s.Reset()
		return fmt.Errorf("direct message to %s: %w", to, err)
	}
	var ack [1]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		// A receiver that does not take the topic resets the stream.
		_ = s.Reset()
		return fmt.Errorf("direct message to %s: no answer (%w: %v)", to, ErrNotDirect, err)
	}
	if ack[0] != directAccepted {
		return fmt.Errorf("%w: %s on %s", ErrDirectRejected, to, topic)
	}
	return nil
}

// handleDirect reads one direct message, validates it and hands it on.
func (p *Host) handleDirect(s network.Stream) {
	defer s.Close()
	from := s.Conn().RemotePeer()
	_ = s.SetReadDeadline(time.Now().Add(directTimeout))
	// msgio's varint readers do not buffer, so one per frame, each with
	// its own bound, read the stream in turn.
	topic, err := msgio.NewVarintReaderSize(s, maxTopicLen).ReadMsg()
	if err != nil {
		p.log.Debug("direct message unreadable", "remote", from, "err", err)
		_ = s.Reset()
		return
	}
	p.mu.Lock()
	j, ok := p.joined[string(topic)]
	p.mu.Unlock()
	if !ok || !j.direct {
		p.log.Debug("direct message refused", "remote", from, "topic", string(topic), "err", ErrNotDirect)
		_ = s.Reset()
		return
	}
	data, err := msgio.NewVarintReaderSize(s, p.cfg.MaxMessageSize).ReadMsg()
	if err != nil {
		p.log.Debug("direct message unreadable", "remote", from, "topic", string(topic), "err", err)
		_ = s.Reset()
		return
	}
	timeout := p.cfg.ValidatorTimeout
	if timeout <= 0 {
		timeout = directTimeout
	}
	ctx, cancel := context.WithTimeout(context.WithValue(p.ctx, directKey{}, true), timeout)
	decoded, err := j.v(ctx, from, data)
	cancel()
	if err != nil {
		p.log.Debug("direct message dropped", "remote", from, "topic", string(topic), "err", err)
		_, _ = s.Write([]byte{directRejected})
		return
	}
	_, _ = s.Write([]byte{directAccepted})
	j.h(Message{Topic: string(topic), From: from, Data: data, Decoded: decoded})
}
