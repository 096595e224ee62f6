package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// netnsLab is a star network of Linux network namespaces: one router
// namespace and one namespace per node, joined by veth pairs, so that
// `poai run` processes talk over real interfaces and a link can be cut.
type netnsLab struct {
	t      *testing.T
	prefix string
	nodes  int
}

func (l *netnsLab) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (l *netnsLab) ns(i int) string { return fmt.Sprintf("%s%d", l.prefix, i) }
func (l *netnsLab) router() string  { return l.prefix + "r" }
func (l *netnsLab) addr(i int) string {
	return fmt.Sprintf("10.77.%d.2", i)
}

// up creates the namespaces and links; it returns an error (and cleans
// up) where the machine does not allow it.
func (l *netnsLab) up() error {
	if err := l.ip("netns", "add", l.router()); err != nil {
		return err
	}
	steps := [][]string{
		{"netns", "exec", l.router(), "ip", "link", "set", "lo", "up"},
		{"netns", "exec", l.router(), "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
	}
	for i := 1; i <= l.nodes; i++ {
		ns, rv := l.ns(i), fmt.Sprintf("%sv%d", l.prefix, i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", rv, "netns", l.router(), "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"netns", "exec", l.router(), "ip", "addr", "add", fmt.Sprintf("10.77.%d.1/24", i), "dev", rv},
			[]string{"netns", "exec", l.router(), "ip", "link", "set", rv, "up"},
			[]string{"netns", "exec", ns, "ip", "addr", "add", l.addr(i) + "/24", "dev", "eth0"},
			[]string{"netns", "exec", ns, "ip", "link", "set", "eth0", "up"},
			[]string{"netns", "exec", ns, "ip", "link", "set", "lo", "up"},
			[]string{"netns", "exec", ns, "ip", "route", "add", "default", "via", fmt.Sprintf("10.77.%d.1", i)},
		)
	}
	for _, s := range steps {
		if s[0] == "netns" && s[1] == "exec" && s[3] == "sysctl" {
			if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
				l.down()
				return fmt.Errorf("sysctl in a namespace: %v: %s", err, out)
			}
			continue
		}
		if err := l.ip(s...); err != nil {
			l.down()
			return err
		}
	}
	return nil
}

// link sets node i's link at the router up or down.
func (l *netnsLab) link(i int, up bool) {
	state := "down"
	if up {
		state = "up"
	}
	if err := l.ip("netns", "exec", l.router(), "ip", "link", "set", fmt.Sprintf("%sv%d", l.prefix, i), state); err != nil {
		l.t.Fatal(err)
	}
}

func (l *netnsLab) down() {
	for i := 1; i <= l.nodes; i++ {
		_ = exec.Command("ip", "netns", "del", l.ns(i)).Run()
	}
	_ = exec.Command("ip", "netns", "del", l.router()).Run()
}

// TestPartitionHeals runs four `poai run` processes in separate network
// namespaces, cuts two of them off for several epochs, heals the links and
// checks that the scores converge again (every peer back in every view,
// none graylisted, honest scores high) and, after a graceful stop, that
// every store reopens with its attestations. Skipped, with the reason,
// where network namespaces cannot be made (not root, no iproute2).
func TestPartitionHeals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four node processes in network namespaces for one to two minutes")
	}
	if os.Getenv("POAI_NETNS_TEST") == "" {
		// Its deadlines assume the machine is not also running every
		// other package's tests, as go test ./... does; .ci/run runs it
		// on its own afterwards.
		t.Skip("set POAI_NETNS_TEST=1 to run (.ci/run does, alone, after go test ./...)")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 (ip) is not installed")
	}
	const n = 4
	lab := &netnsLab{t: t, prefix: fmt.Sprintf("pz%d", os.Getpid()%100000), nodes: n}
	if err := lab.up(); err != nil {
		t.Skipf("cannot build the namespace network here: %v", err)
	}
	defer lab.down()

	bin := filepath.Join(t.TempDir(), "poai")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/poai").CombinedOutput(); err != nil {
		t.Fatalf("build poai: %v\n%s", err, out)
	}
	genesis := time.Now().Add(8 * time.Second).Truncate(time.Second)
	const epoch = 4 * time.Second
	dirs := make([]string, n+1)
	ids := make([]peer.ID, n+1)
	for i := 1; i <= n; i++ {
		dirs[i] = filepath.Join(t.TempDir(), fmt.Sprint("node", i))
		if err := os.MkdirAll(dirs[i], 0o700); err != nil {
			t.Fatal(err)
		}
		key, err := p2p.LoadOrCreateKey(filepath.Join(dirs[i], node.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		ids[i], _ = peer.IDFromPrivateKey(key)
	}
	for i := 1; i <= n; i++ {
		c := node.DefaultConfig()
		c.P2P.Listen = []string{fmt.Sprintf("/ip4/%s/tcp/4001", lab.addr(i))}
		c.P2P.MDNS = false
		if i > 1 {
			c.P2P.Bootstrap = []string{fmt.Sprintf("/ip4/%s/tcp/4001/p2p/%s", lab.addr(1), ids[1])}
		}
		c.Challenge.Genesis = genesis.Unix()
		c.Challenge.EpochLength = node.Duration(epoch)
		c.Challenge.TargetDuration = node.Duration(300 * time.Millisecond)
		c.Device.Backend = "cpu"
		c.Device.Model = "netns CPU"
		c.Device.Int8TOPS, c.Device.BF16TFLOPS, c.Device.HashGHps, c.Device.VRAMBytes = 0.002, 0.001, 0.002, 256<<10
		c.Metrics.Listen = ""
		if err := node.WriteConfig(filepath.Join(dirs[i], node.ConfigFile), c); err != nil {
			t.Fatal(err)
		}
	}
	procs := make([]*exec.Cmd, n+1)
	for i := 1; i <= n; i++ {
		cmd := exec.Command("ip", "netns", "exec", lab.ns(i), bin, "run", "--data-dir", dirs[i], "--log-level", "warn")
		logf, _ := os.Create(filepath.Join(dirs[i], "log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = cmd
	}
	defer func() {
		for i := 1; i <= n; i++ {
			if procs[i] != nil && procs[i].ProcessState == nil {
				_ = procs[i].Process.Kill()
				_ = procs[i].Wait()
			}
		}
	}()
	peersOf := func(i int) []node.PeerView {
		out, err := exec.Command("ip", "netns", "exec", lab.ns(i), bin, "peers", "--json").Output()
		if err != nil {
			return nil
		}
		var v []node.PeerView
		_ = json.Unmarshal(out, &v)
		return v
	}
	at := func(e int64) { time.Sleep(time.Until(genesis.Add(time.Duration(e) * epoch))) }
	// healthy: node i knows every other peer, scores it above min and has
	// not graylisted it (peers reach each other through node 1, the
	// bootstrap, so not every pair is connected directly).
	healthy := func(i int, min float64) (bool, string) {
		v := peersOf(i)
		var b strings.Builder
		ok := len(v) == n
		for _, p := range v {
			fmt.Fprintf(&b, " %s:%.2f/%.0f/%v", p.PeerID[len(p.PeerID)-6:], p.Score, p.GossipScore, p.Connected)
			if !p.Self && (p.Score < min || p.GossipScore < p2p.GraylistThreshold) {
				ok = false
			}
		}
		return ok, b.String()
	}

	// Cut a healthy network: from epoch 5, the first epoch in which every
	// view is healthy (a peer with one early miss on a record of a few
	// challenges can sit just under 0.3 for an epoch or two).
	start := int64(5)
	for ; ; start++ {
		at(start)
		all, why := true, ""
		for i := 1; i <= n; i++ {
			if ok, s := healthy(i, 0.3); !ok {
				all, why = false, fmt.Sprintf("node %d's view:%s", i, s)
			}
		}
		if all {
			break
		}
		if start == 10 {
			t.Fatalf("before the partition, at epoch %d, %s", start, why)
		}
	}
	// Partition: nodes 3 and 4 lose their links for cutEpochs epochs,
	// long enough that a challenger that kept challenging them would
	// brand them for missing most of their challenges. (TCP connections
	// may stay "open" for minutes without traffic getting through; what
	// must stop is the traffic: no fresh claim from them.)
	const cutEpochs = 8
	lab.link(3, false)
	lab.link(4, false)
	cut := time.Now()
	at(start + cutEpochs)
	for _, p := range peersOf(1) {
		if (p.PeerID == ids[3].String() || p.PeerID == ids[4].String()) && p.LastSeen.After(cut.Add(time.Second)) {
			t.Fatalf("node 1 heard a claim from %s at %v, during the partition (cut at %v)", p.PeerID, p.LastSeen, cut)
		}
	}
	lab.link(3, true)
	lab.link(4, true)
	healed := time.Now()
	// Heal: within a few epochs every node hears every peer again, and
	// nobody was branded by the partition.
	// Up to 45 epochs: a partitioned peer's mesh links come back after
	// gossipsub's prune backoff (a minute), and until then challenges reach
	// it late; its misses must fade and its passes count again. At 25, one
	// CI run in three (2026-12-07) ended with each side still holding two
	// or three misses of the other's peers, recorded around the cut.
	deadline := genesis.Add(time.Duration(start+cutEpochs+45) * epoch)
	for {
		all, why := true, ""
		for i := 1; i <= n; i++ {
			if ok, s := healthy(i, 0.3); !ok {
				all, why = false, fmt.Sprintf("node %d:%s", i, s)
			}
			for _, p := range peersOf(i) {
				if !p.Self && !p.LastSeen.After(healed) {
					all, why = false, fmt.Sprintf("node %d has not heard %s since the heal", i, p.PeerID)
				}
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			for i := 1; i <= n; i++ {
				_, s := healthy(i, 0)
				t.Logf("node %d's view (peer:score/gossip score/connected):%s", i, s)
			}
			out, _ := exec.Command("ip", "netns", "exec", lab.ns(1), bin, "scores", "--json").Output()
			t.Logf("node 1's scores: %q", out)
			t.Fatalf("scores did not converge after the heal: %s", why)
		}
		time.Sleep(epoch)
	}
	t.Logf("every view whole again %v after the heal", time.Since(healed).Round(time.Second))
	// Graceful stop, then every store reopens with its history.
	counts := make([]int, n+1)
	for i := 1; i <= n; i++ {
		for _, p := range peersOf(i) {
			if !p.Self {
				counts[i]++
			}
		}
		if err := procs[i].Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= n; i++ {
		if err := procs[i].Wait(); err != nil {
			log, _ := os.ReadFile(filepath.Join(dirs[i], "log"))
			t.Fatalf("node %d did not stop cleanly: %v\n%s", i, err, lastLines(log, 20))
		}
		book, err := scoring.Open(t.Context(), filepath.Join(dirs[i], node.ScoresDir), ids[i].String(), scoring.DefaultParams(), nil)
		if err != nil {
			t.Fatalf("node %d's store does not reopen: %v", i, err)
		}
		scored := len(book.Peers())
		v, ok := book.Trust()
		book.Close()
		if scored < n-1 || !ok || len(v.Peers) < n {
			t.Fatalf("node %d's store after the stop: %d peers scored, trust vector %v with %d peers", i, scored, ok, len(v.Peers))
		}
		t.Logf("node %d: %d peers scored, last trust round epoch %d", i, scored, v.Epoch)
	}
}

func lastLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
