package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/p2p"
)

// gossip sends this node's messages: on its shard's topics (gossipsub)
// and straight to chosen peers over p2p.DirectProtocol. It never blocks
// its caller: each send runs on a goroutine counted in wg that gives up
// when ctx ends. Safe for concurrent use; set up once in Start.
type gossip struct {
	host          *p2p.Host
	self          peer.ID
	shard, shards int
	ctx           context.Context
	wg            *sync.WaitGroup
	log           *slog.Logger
	// direct counts direct sends by topic and result (sent, rejected,
	// failed): metrics.direct.
	direct *prometheus.CounterVec
}

// topic returns the name of base (one of p2p.Topics) in this node's shard.
func (g *gossip) topic(base string) string {
	return p2p.ShardTopic(base, g.shard, g.shards)
}

// publish encodes m and publishes it on topic.
func (g *gossip) publish(topic string, m proto.Message) {
	g.publishTo(topic, m, 0)
}

// publishTo publishes m on topic and also sends it to each peer of to
// over p2p.DirectProtocol, giving up after timeout. The direct copies go
// once the local validator has accepted the message (Publish returned),
// so a message this node would reject never leaves it.
func (g *gossip) publishTo(topic string, m proto.Message, timeout time.Duration, to ...peer.ID) {
	g.publishThen(topic, m, timeout, nil, to...)
}

// publishThen is publishTo that also runs accepted, on the publishing
// goroutine, once this node's own validator has accepted m (Publish
// returned no error): what counts a message as sent goes there, so a
// message the node itself refuses is not counted.
func (g *gossip) publishThen(topic string, m proto.Message, timeout time.Duration, accepted func(), to ...peer.ID) {
	b, err := challenge.Marshal(m)
	if err != nil {
		g.log.Error("encode message", "topic", topic, "err", err)
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := g.host.Publish(g.ctx, g.topic(topic), b); err != nil {
			if g.ctx.Err() == nil {
				g.log.Warn("publish failed", "topic", topic, "err", err)
			}
			return
		}
		if accepted != nil {
			accepted()
		}
		for _, p := range to {
			if p == g.self {
				continue
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				g.sendDirect(topic, b, p, timeout)
			}()
		}
	}()
}

// sendDirect hands an encoded message of topic to peer to over
// p2p.DirectProtocol, on the caller's goroutine, and counts the outcome.
func (g *gossip) sendDirect(topic string, b []byte, to peer.ID, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(g.ctx, timeout)
	defer cancel()
	if err := g.host.SendDirect(ctx, to, g.topic(topic), b); err != nil {
		result := "failed"
		if errors.Is(err, p2p.ErrDirectRejected) {
			result = "rejected" // usually: the gossip copy came first
		}
		g.direct.WithLabelValues(topic, result).Inc()
		g.log.Debug("direct send not accepted", "topic", topic, "to", shortID(to), "err", err)
		return
	}
	g.direct.WithLabelValues(topic, "sent").Inc()
}

// events is the queue of the loop goroutine (Node.loop), which owns the
// node's protocol state: whatever touches that state runs as a function
// posted here. Safe for concurrent use.
type events struct {
	q    chan func()
	done <-chan struct{} // the node's context ended: posting gives up
	wg   *sync.WaitGroup
}

// post runs f on the loop goroutine; it gives up when the node closes.
func (ev *events) post(f func()) {
	select {
	case ev.q <- f:
	case <-ev.done:
	}
}

// after runs f on the loop goroutine once d has passed.
func (ev *events) after(d time.Duration, f func()) {
	ev.wg.Add(1)
	go func() {
		defer ev.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			ev.post(f)
		case <-ev.done:
		}
	}()
}

// snapshot runs f on the loop goroutine and waits for it; it returns
// false if the node is closing.
func (ev *events) snapshot(f func()) bool {
	done := make(chan struct{})
	select {
	case ev.q <- func() { f(); close(done) }:
	case <-ev.done:
		return false
	}
	select {
	case <-done:
		return true
	case <-ev.done:
		return false
	}
}
