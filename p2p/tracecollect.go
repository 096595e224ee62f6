package p2p

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-msgio/pbio"
)

// maxTraceBatch bounds one TraceEventBatch a collector reads (gossipsub's
// remote tracer buffers at most 64 Ki events, far less per batch).
const maxTraceBatch = 16 << 20

// TraceCollector receives gossipsub traces from remote tracers
// (pubsub.RemoteTracerProtoID: a gzip stream of varint-delimited
// TraceEventBatch messages, one stream per traced peer) and writes each
// event as one JSON line, the format of pubsub.NewJSONTracer, which
// `poai trace summarize` reads. Safe for concurrent streams.
type TraceCollector struct {
	log    *slog.Logger
	mu     sync.Mutex
	enc    *json.Encoder
	out    *countingWriter
	limit  int64 // bytes; 0: none
	events atomic.Int64
	peers  atomic.Int64
}

// CollectTraces makes h a remote-tracer collector writing to w, at most
// limit bytes (0: no limit); past it every tracer stream is reset.
func CollectTraces(h host.Host, w io.Writer, limit int64, log *slog.Logger) *TraceCollector {
	cw := &countingWriter{w: w}
	c := &TraceCollector{log: log, enc: json.NewEncoder(cw), out: cw, limit: limit}
	h.SetStreamHandler(pubsub.RemoteTracerProtoID, c.handle)
	return c
}

// countingWriter counts the bytes written through it (under
// TraceCollector.mu).
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Bytes returns how many bytes were written.
func (c *TraceCollector) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.n
}

// Events returns how many events were written, Peers how many tracer
// streams were opened.
func (c *TraceCollector) Events() int64 { return c.events.Load() }

// Peers returns how many tracer streams were opened so far.
func (c *TraceCollector) Peers() int64 { return c.peers.Load() }

func (c *TraceCollector) handle(s network.Stream) {
	defer s.Close()
	c.peers.Add(1)
	from := s.Conn().RemotePeer()
	gz, err := gzip.NewReader(s)
	if err != nil {
		c.log.Warn("trace stream unreadable", "from", from, "err", err)
		_ = s.Reset()
		return
	}
	r := pbio.NewDelimitedReader(gz, maxTraceBatch)
	for {
		var batch pubsubpb.TraceEventBatch
		if err := r.ReadMsg(&batch); err != nil {
			if err != io.EOF {
				c.log.Debug("trace stream ended", "from", from, "err", err)
			}
			return
		}
		c.mu.Lock()
		if c.limit > 0 && c.out.n >= c.limit {
			c.mu.Unlock()
			c.log.Warn("trace output full: stream refused", "from", from, "limit_bytes", c.limit)
			_ = s.Reset()
			return
		}
		for _, ev := range batch.GetBatch() {
			// A tracer reports its own events: the peer is the one the
			// stream's secure channel authenticated, whatever the event
			// says, so one node cannot write events in another's name.
			ev.PeerID = []byte(from)
			if err := c.enc.Encode(ev); err != nil {
				c.mu.Unlock()
				c.log.Warn("trace write failed", "err", err)
				_ = s.Reset()
				return
			}
			c.events.Add(1)
		}
		c.mu.Unlock()
	}
}
