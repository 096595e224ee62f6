package p2p

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestIdentityPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "identity.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := peer.IDFromPrivateKey(k1)
	id2, _ := peer.IDFromPrivateKey(k2)
	if id1 != id2 {
		t.Fatalf("peer ID changed across loads: %s vs %s", id1, id2)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("corrupt key file accepted")
	}
	if b, _ := os.ReadFile(path); string(b) != "garbage" {
		t.Fatal("corrupt key file was overwritten")
	}
}

// TestIdentityDamagedSeed overwrites bytes inside the private seed of a
// stored key: the file still decodes, but the key cannot sign, so loading
// it must fail, naming the file and what to do, and leave it as it was.
func TestIdentityDamagedSeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	if _, err := LoadOrCreateKey(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// libp2p's encoding ends with the 64-byte key: seed || public key.
	seed := len(b) - 64
	for i := seed + 3; i < seed+11; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadOrCreateKey(path)
	if err == nil {
		t.Fatal("key with a damaged seed accepted")
	}
	for _, want := range []string{path, "damaged key", "restore", "move it away", "peer ID"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
		t.Fatal("damaged key file was rewritten")
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		t.Fatal("a new key was written beside the damaged one")
	}
}

func newHost(t *testing.T, bootstrap ...string) *Host {
	t.Helper()
	return newHostWith(t, func(cfg *Config) {
		cfg.ListenAddrs = append(cfg.ListenAddrs, "/ip4/127.0.0.1/udp/0/quic-v1")
		cfg.Bootstrap = bootstrap
		cfg.ReconnectInterval = 200 * time.Millisecond
	})
}

// newHostWith starts a host on a fresh identity, listening on loopback TCP
// without mDNS, with edit applied to its config; it is closed at the end
// of the test.
func newHostWith(t *testing.T, edit func(*Config)) *Host {
	t.Helper()
	h, err := tryHost(t, edit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// tryHost is newHostWith returning New's error; the caller closes the host.
func tryHost(t *testing.T, edit func(*Config)) (*Host, error) {
	t.Helper()
	k, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MDNS = false
	edit(&cfg)
	return New(k, cfg, nil)
}

// testValidator accepts any payload but "bad", which it rejects and
// counts in rejected; it decodes a payload to "<payload> from <author>".
func testValidator(rejected *atomic.Int32) Validator {
	return func(ctx context.Context, from peer.ID, data []byte) (any, error) {
		if string(data) == "bad" {
			rejected.Add(1)
			return nil, errors.New("bad payload")
		}
		path := "gossip"
		if ViaDirect(ctx) {
			path = "direct"
		}
		return string(data) + " from " + from.String() + " by " + path, nil
	}
}

func TestGossipWithValidator(t *testing.T) {
	a := newHost(t)
	b := newHost(t, a.Addrs()[0].String())
	var rejected atomic.Int32
	validator := testValidator(&rejected)
	got := make(chan Message, 10)
	for _, h := range []*Host{a, b} {
		if err := h.Join(TopicClaims, validator, func(m Message) {
			if m.From != h.ID() {
				got <- m
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(a.MeshPeers(TopicClaims)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond) // one heartbeat, so the mesh forms
	ctx := t.Context()
	if err := b.Publish(ctx, TopicClaims, []byte("bad")); err == nil {
		t.Fatal("publishing a message the local validator rejects succeeded")
	}
	if err := b.Publish(ctx, TopicClaims, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.From != b.ID() || m.Decoded != "hello from "+b.ID().String()+" by gossip" {
			t.Fatalf("got %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message not delivered")
	}
	if rejected.Load() == 0 {
		t.Fatal("validator never saw the bad message")
	}
}

func TestParseBootstrap(t *testing.T) {
	if _, err := ParseBootstrap([]string{"/ip4/127.0.0.1/tcp/1"}); err == nil {
		t.Fatal("address without /p2p accepted")
	}
	if _, err := ParseBootstrap([]string{"not a multiaddr"}); err == nil {
		t.Fatal("garbage accepted")
	}
}
