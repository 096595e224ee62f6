package p2p

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
)

// syncBuffer is a bytes.Buffer safe for the collector's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRemoteTracer: a host tracing to a remote collector and to a file
// sends the same gossipsub events to both; the collector writes them as
// JSON lines that decode as trace events, a publish among them.
func TestRemoteTracer(t *testing.T) {
	collector := newHost(t)
	var out syncBuffer
	c := CollectTraces(collector.Libp2p(), &out, 0, slog.Default())
	file := filepath.Join(t.TempDir(), "trace.json")
	traced := newHostWith(t, func(cfg *Config) {
		cfg.TraceFile = file
		cfg.TraceRemote = collector.Addrs()[0].String() + "/p2p/" + collector.ID().String()
	})
	if err := traced.Join("t", testValidator(new(atomic.Int32)), func(Message) {}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for c.Events() == 0 && time.Now().Before(deadline) {
		_ = traced.Publish(t.Context(), "t", []byte("hello"))
		time.Sleep(300 * time.Millisecond)
	}
	if c.Events() == 0 || c.Peers() != 1 {
		t.Fatalf("collector got %d events from %d tracers", c.Events(), c.Peers())
	}
	types := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var ev pubsubpb.TraceEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if string(ev.GetPeerID()) != string(traced.ID()) {
			t.Errorf("event of peer %x, want the traced host", ev.GetPeerID())
		}
		types[ev.GetType().String()]++
	}
	if types["PUBLISH_MESSAGE"] == 0 {
		t.Errorf("no publish among the collected events: %v", types)
	}
	b, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(b), `"type":0`) && !strings.Contains(string(b), "publishMessage") {
		t.Errorf("the trace file lacks the publish (%v): %.200s", err, b)
	}
}

// TestRemoteTracerBadAddress: a remote tracer address without a peer ID
// is refused at start, naming the setting's form.
func TestRemoteTracerBadAddress(t *testing.T) {
	h, err := tryHost(t, func(cfg *Config) { cfg.TraceRemote = "/ip4/127.0.0.1/tcp/4010" })
	if err == nil || !strings.Contains(err.Error(), "/p2p/<peer ID>") {
		if h != nil {
			h.Close()
		}
		t.Fatalf("a tracer address without a peer ID: %v", err)
	}
}

// TestTraceCollectorLimit: past its byte limit the collector writes
// nothing more.
func TestTraceCollectorLimit(t *testing.T) {
	collector := newHost(t)
	var out syncBuffer
	c := CollectTraces(collector.Libp2p(), &out, 1, slog.Default())
	traced := newHostWith(t, func(cfg *Config) {
		cfg.TraceRemote = collector.Addrs()[0].String() + "/p2p/" + collector.ID().String()
	})
	if err := traced.Join("t", testValidator(new(atomic.Int32)), func(Message) {}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Events() == 0 && time.Now().Before(deadline) {
		_ = traced.Publish(t.Context(), "t", []byte("hello"))
		time.Sleep(300 * time.Millisecond)
	}
	first := c.Bytes()
	if first == 0 {
		t.Fatal("nothing collected")
	}
	for range 5 {
		_ = traced.Publish(t.Context(), "t", []byte("more"))
		time.Sleep(300 * time.Millisecond)
	}
	if got := c.Bytes(); got != first {
		t.Errorf("%d bytes written past the limit (first batch %d)", got-first, first)
	}
}
