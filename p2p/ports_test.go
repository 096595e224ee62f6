package p2p

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestPortInUseRefused: a fixed p2p port that another socket holds — a
// plain listener, or another libp2p host, whose transports set
// SO_REUSEPORT and would otherwise share it — stops a host from starting
// with ErrPortInUse naming the port; port 0 is never probed.
func TestPortInUseRefused(t *testing.T) {
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "k.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	cfg := DefaultConfig()
	cfg.MDNS = false
	cfg.ListenAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
	if h, err := New(key, cfg, nil); !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), fmt.Sprint(port)) {
		if h != nil {
			h.Close()
		}
		t.Fatalf("port %d held by a listener: err %v, want ErrPortInUse naming it", port, err)
	}
	l.Close()

	// A first host on a fixed port; a second one on the same port is refused.
	first, err := New(key, cfg, nil)
	if err != nil {
		t.Fatalf("port %d free again: %v", port, err)
	}
	defer first.Close()
	key2, _ := LoadOrCreateKey(filepath.Join(t.TempDir(), "k2.key"))
	if h, err := New(key2, cfg, nil); !errors.Is(err, ErrPortInUse) {
		if h != nil {
			h.Close()
		}
		t.Fatalf("port %d held by another host: err %v, want ErrPortInUse", port, err)
	}
	if err := CheckPortsFree([]string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}); err != nil {
		t.Fatalf("port 0: %v", err)
	}
}
