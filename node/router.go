package node

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// decoded is what the topic validators hand to the handlers.
type decoded struct {
	msg proto.Message
	cid cid.Cid
}

// wrap adapts a typed validator method to one returning proto.Message.
func wrap[M proto.Message](f func(peer.ID, []byte, time.Time) (M, cid.Cid, error)) func(peer.ID, []byte, time.Time) (proto.Message, cid.Cid, error) {
	return func(from peer.ID, data []byte, now time.Time) (proto.Message, cid.Cid, error) {
		return f(from, data, now)
	}
}

// maxRejected bounds the offences Node.rejected remembers.
const maxRejected = 8192

// offenceKey names one offence: an author's payload, whatever envelope
// (gossipsub seqno, hence message ID) carries it.
func offenceKey(from peer.ID, data []byte) string {
	return string(from) + challenge.CIDOf(data).KeyString()
}

// validatorFor returns the pubsub validator of topic: decode and check,
// count the result.
//
// Each offence is counted once: a payload rejected from an author is
// remembered (Node.rejected) and a repeat of it, in a new envelope (the
// author publishing it again) or after gossipsub's seen cache forgot it,
// is ignored, counted as ignore/repeat, instead of rejected again — a
// second rejection would charge a second invalid message (P4, which
// grows with its square) for one offence.
//
// A well-formed message this node has no use for is ignored, not
// accepted (useful): gossipsub gives no first-delivery credit for it and
// does not forward it.
func (n *Node) validatorFor(topic string, decode func(peer.ID, []byte, time.Time) (proto.Message, cid.Cid, error)) p2p.Validator {
	return func(ctx context.Context, from peer.ID, data []byte) (any, error) {
		if n.o.loss > 0 && from != n.id && mrand.Float64() < n.o.loss {
			n.metrics.messages.WithLabelValues(topic, "ignore", "loss").Inc()
			return nil, fmt.Errorf("%w: lost (simulated)", p2p.ErrIgnore)
		}
		offence := offenceKey(from, data)
		if n.rejected.Seen(offence, time.Now()) {
			n.metrics.messages.WithLabelValues(topic, "ignore", "repeat").Inc()
			return nil, fmt.Errorf("%w: %s: a repeat of a message rejected before", p2p.ErrIgnore, from)
		}
		// reject counts one offence once: two copies validated at the same
		// time (gossipsub runs validators concurrently) both miss Seen, and
		// only the first to record the offence rejects.
		reject := func(reason string, err error) (any, error) {
			if !n.rejected.AddIfAbsent(offence, time.Now()) {
				n.metrics.messages.WithLabelValues(topic, "ignore", "repeat").Inc()
				return nil, fmt.Errorf("%w: %s: a repeat of a message rejected before", p2p.ErrIgnore, from)
			}
			n.metrics.messages.WithLabelValues(topic, "reject", reason).Inc()
			return nil, err
		}
		if s := p2p.ShardOf(from, n.cfg.P2P.Shards); s != n.shard {
			return reject("shard", fmt.Errorf("author %s belongs to shard %d, not %d", from, s, n.shard))
		}
		m, c, err := decode(from, data, time.Now())
		if err != nil {
			reason := challenge.Reason(err)
			if errors.Is(err, challenge.ErrOutOfEpoch) {
				n.metrics.outOfEpoch.WithLabelValues(topic).Inc()
			}
			if errors.Is(err, challenge.ErrEpochMismatch) {
				n.metrics.epochMismatch.WithLabelValues(topic).Inc()
			}
			if errors.Is(err, challenge.ErrReplayed) || errors.Is(err, challenge.ErrStale) || errors.Is(err, challenge.ErrEpochMismatch) {
				// Not proof of malice by whoever forwarded it (it may have
				// joined after the original, its clock differs, or it had
				// not heard the challenge yet): drop without a gossipsub
				// penalty.
				n.metrics.messages.WithLabelValues(topic, "ignore", reason).Inc()
				return nil, fmt.Errorf("%w: %v", p2p.ErrIgnore, err)
			}
			return reject(reason, err)
		}
		// Rate limits apply to fresh, valid messages of an author (stale
		// replays never spend its budget) and drop the excess without a
		// gossipsub penalty: the penalty would fall on the forwarder, not
		// on the author.
		if !n.limiter.allow(from, topic, time.Now()) {
			n.metrics.messages.WithLabelValues(topic, "ignore", "rate").Inc()
			return nil, fmt.Errorf("%w: %s: %s over its rate limit", p2p.ErrIgnore, topic, from)
		}
		if reason := n.useless(ctx, topic, from, m); reason != "" {
			n.metrics.messages.WithLabelValues(topic, "ignore", reason).Inc()
			return nil, fmt.Errorf("%w: %s: %s from %s", p2p.ErrIgnore, topic, reason, from)
		}
		if p2p.ViaDirect(ctx) {
			// A direct copy must not make the gossip copy a replay: gossipsub
			// would then not forward it to this node's mesh peers (and its
			// deliverers would earn no credit). The handlers drop the
			// duplicate.
			n.validator.Forget(c)
		}
		n.metrics.messages.WithLabelValues(topic, "accept", "").Inc()
		return decoded{msg: m, cid: c}, nil
	}
}

// useless returns why this node has no use for m, a valid message of
// topic from another peer ("" when it has one): today an attestation of
// a challenge it does not follow (unknown_challenge), one that disagrees
// with its challenge's target, epoch or deadline (mismatch), or one from
// a peer that is not among the challenge's possible verifiers
// (not_verifier) — what onAttestation drops. The loop goroutine, which
// owns the challenges, answers; "" when it cannot before ctx ends (the
// handler checks again).
func (n *Node) useless(ctx context.Context, topic string, from peer.ID, m proto.Message) string {
	a, ok := m.(*pb.Attestation)
	if !ok || from == n.id || n.ctx == nil {
		return ""
	}
	answer := make(chan string, 1)
	select {
	case n.ev.q <- func() { _, reason := n.tk.attestationFor(from, a); answer <- reason }:
	case <-ctx.Done():
		return ""
	case <-n.ctx.Done():
		return ""
	}
	select {
	case r := <-answer:
		return r
	case <-ctx.Done():
	case <-n.ctx.Done():
	}
	return ""
}
