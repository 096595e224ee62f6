package p2p

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestFetchClaim: a peer serving its claim hands it to whoever asks; one
// over the asker's bound is refused, and a peer that serves none (nil)
// resets the stream.
func TestFetchClaim(t *testing.T) {
	a := newHost(t)
	b := newHost(t, a.Addrs()[0].String())
	claim := []byte("claim of a")
	var serve atomic.Pointer[[]byte]
	serve.Store(&claim)
	a.ServeClaim(func() []byte { return *serve.Load() })
	deadline := time.Now().Add(10 * time.Second)
	for len(b.ConnectedPeers()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	got, err := b.FetchClaim(ctx, a.ID(), 1024)
	if err != nil || !bytes.Equal(got, claim) {
		t.Fatalf("fetched %q, %v; want %q", got, err, claim)
	}
	if got, err := b.FetchClaim(ctx, a.ID(), len(claim)-1); err == nil {
		t.Fatalf("a claim over the bound fetched: %q", got)
	}
	serve.Store(new([]byte))
	if got, err := b.FetchClaim(ctx, a.ID(), 1024); err == nil {
		t.Fatalf("a peer serving no claim handed out %q", got)
	}
	if _, err := a.FetchClaim(ctx, b.ID(), 1024); err == nil {
		t.Fatal("a claim fetched from a peer that serves none")
	}
}
