package p2p

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ErrPortInUse reports a listen address whose fixed port another socket
// already holds.
var ErrPortInUse = errors.New("p2p port already in use")

// CheckPortsFree binds and releases, once, every listen address of addrs
// with a fixed TCP or UDP port, and returns ErrPortInUse, naming the
// address, for the first one another socket holds. go-libp2p's TCP and
// QUIC transports set SO_REUSEPORT, so a second daemon on the same port
// (another poai, or a libp2p daemon such as Kubo, whose default is also
// 4001) would otherwise share it silently and receive part of its peers'
// connections; a probe without SO_REUSEPORT fails on a port that any
// socket holds. Port 0 and addresses that do not parse or bind for other
// reasons (no IPv6 on the host) are left to libp2p to report.
func CheckPortsFree(addrs []string) error {
	for _, s := range addrs {
		ma, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			continue
		}
		na, err := manet.ToNetAddr(ma)
		if err != nil {
			continue
		}
		var (
			port  int
			probe func() (interface{ Close() error }, error)
			proto string
		)
		switch a := na.(type) {
		case *net.TCPAddr:
			port, proto = a.Port, "tcp"
			probe = func() (interface{ Close() error }, error) { return net.Listen("tcp", a.String()) }
		case *net.UDPAddr:
			port, proto = a.Port, "udp"
			probe = func() (interface{ Close() error }, error) { return net.ListenPacket("udp", a.String()) }
		default:
			continue
		}
		if port == 0 {
			continue
		}
		l, err := probe()
		if err == nil {
			l.Close()
			continue
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w: %s (port %s/%s): another process holds it (a second poai on this machine, or another libp2p daemon such as Kubo, whose default is 4001, poai's before 2026-12); stop it, or choose another port in [p2p] listen of config.toml", ErrPortInUse, s, strconv.Itoa(port), proto)
		}
	}
	return nil
}
