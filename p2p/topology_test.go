package p2p

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestFetchTopology: a host that shares answers whoever asks (and learns
// who asked), the asker sees the protocol announced in identify, a report
// over MaxTopologyBytes is refused, and a host that does not share is
// neither announced nor answers.
func TestFetchTopology(t *testing.T) {
	a := newHost(t)
	b := newHost(t, a.Addrs()[0].String())
	report := []byte("report of a")
	asked := make(chan peer.ID, 4)
	a.ServeTopology(func(asker peer.ID) []byte {
		asked <- asker
		return report
	})
	deadline := time.Now().Add(10 * time.Second)
	for !b.SharesTopology(a.ID()) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !b.SharesTopology(a.ID()) {
		t.Fatal("a's topology protocol not seen by b")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	got, err := b.FetchTopology(ctx, a.ID())
	if err != nil || !bytes.Equal(got, report) {
		t.Fatalf("fetched %q, %v; want %q", got, err, report)
	}
	if who := <-asked; who != b.ID() {
		t.Errorf("asker %s, want b %s", who, b.ID())
	}
	report = make([]byte, MaxTopologyBytes+1)
	if got, err := b.FetchTopology(ctx, a.ID()); err == nil {
		t.Errorf("a report of %d bytes fetched", len(got))
	}
	if a.SharesTopology(b.ID()) {
		t.Error("b announces a protocol it does not serve")
	}
	if _, err := a.FetchTopology(ctx, b.ID()); err == nil {
		t.Error("a view fetched from a host that does not share")
	}
}
