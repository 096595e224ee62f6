package devnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/cuda"
	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/multiformats/go-multiaddr"
)

// Devnet is a running local network.
type Devnet struct {
	Nodes []*node.Node
	// GPU names the device node 0 proves on, or is empty.
	GPU      string
	Measured gpu.Throughput
	// Scale is the devnet catalog's scale (gpu.DevnetCatalog), fitted to
	// the measured CPU.
	Scale       gpu.DevnetScale
	Clock       time.Time // genesis
	EpochLength time.Duration
	dir         string
	tempDir     bool
	mocknet     mocknet.Mocknet
	emulated    []*gpu.Emulated // every emulated device, once
}

// devnetDevice is what a devnet node proves on: a backend and the
// throughput its claim derives from; emulated devices claim their model.
type devnetDevice struct {
	b        gpu.Backend
	t        gpu.Throughput
	emulated bool
}

// Overruns returns how many workloads the devnet's emulated devices ran
// and how many of them the host finished after their emulated end
// (gpu.Emulated.Overruns).
func (d *Devnet) Overruns() (workloads, overruns uint64) {
	for _, e := range d.emulated {
		w, o := e.Overruns()
		workloads += w
		overruns += o
	}
	return workloads, overruns
}

// Start measures the CPU backend once, then starts cfg.Nodes nodes:
// honest ones first, then the adversaries, each bootstrapping from node 0
// and one random earlier node. Epoch 0 starts after the warm-up.
func Start(ctx context.Context, cfg Config) (*Devnet, error) {
	adv := 0
	for _, c := range cfg.Adversaries {
		adv += c
	}
	if cfg.Nodes < 3 || cfg.Nodes-adv < 2 {
		return nil, fmt.Errorf("devnet: %d nodes with %d adversaries: need at least 3 nodes and 2 honest", cfg.Nodes, adv)
	}
	if r := cfg.Adversaries[node.RoleRelay]; r > cfg.Nodes-adv-1 {
		return nil, fmt.Errorf("devnet: %d relays need %d honest accomplices besides node 0, there are %d honest nodes", r, r, cfg.Nodes-adv)
	}
	switch cfg.Devices {
	case "", DevicesHost, DevicesEmulated:
	default:
		return nil, fmt.Errorf("devnet: devices %q: want %q or %q", cfg.Devices, DevicesHost, DevicesEmulated)
	}
	if cfg.Target <= 0 {
		cfg.Target = 400 * time.Millisecond
	}
	perShard := cfg.Nodes / max(cfg.Shards, 1)
	if cfg.EpochLength == 0 {
		cfg.EpochLength = max(4*time.Second, time.Duration(perShard)*3*cfg.Target).Round(100 * time.Millisecond)
	}
	if cfg.Slack == 0 {
		cfg.Slack = 3
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = 3 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	d := &Devnet{dir: cfg.DataDir, EpochLength: cfg.EpochLength}
	if cfg.Mocknet {
		d.mocknet = mocknet.New()
		d.mocknet.SetLinkDefaults(mocknet.LinkOptions{Latency: cfg.Latency})
	}
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "poai-devnet-")
		if err != nil {
			return nil, err
		}
		d.dir, d.tempDir = dir, true
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	base := node.DefaultConfig()
	// Measured on the challenges' own K and M, so that the per-row costs
	// weigh in the anticipated times as they will in the proofs.
	measured, err := gpu.MeasureAllFor(ctx, gpu.NewCPU(gpu.WithWorkers(cfg.Workers)), gpu.MeasureShapes{Int8K: cfg.K, Int8M: cfg.M, Reps: cfg.MeasureReps})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("devnet: measure CPU backend: %w", err)
	}
	if measured.LLMInt8TOPS, err = challenge.MeasureLLM(ctx, gpu.NewCPU(gpu.WithWorkers(cfg.Workers)), max(cfg.MeasureReps, 2)); err != nil {
		d.Close()
		return nil, fmt.Errorf("devnet: measure CPU backend: llm: %w", err)
	}
	d.Measured = measured
	// Each node claims as much memory as its VRAM proof can fill in the
	// target time on the measured hash rate.
	vs := challenge.DefaultVRAMSizing()
	blocks := measured.HashGHps * 1e9 * cfg.Target.Seconds() / float64(vs.Rounds+vs.ReadsPerBlock)
	vram := uint64(blocks * gpu.VRAMBlockBytes / vs.Fill)
	cfg.Log.Info("measured CPU backend", "int8_tops", measured.Int8TOPS, "bf16_tflops", measured.BF16TFLOPS, "hash_ghps", measured.HashGHps, "vram_claim", vram)
	// Every node plans from the devnet catalog: the real models, and
	// their emulated twins scaled to this CPU.
	basePlanner := base.Challenge.Planner()
	basePlanner.Target = cfg.Target
	d.Scale = fitDevnetScale(measured, basePlanner)
	if cfg.Devices == DevicesEmulated {
		// Every node may prove at the same instant (waves): the host's
		// cores are shared among all the emulated devices, so each gets
		// its share of the headroom.
		f := min(1, float64(runtime.NumCPU())/float64(cfg.Nodes))
		d.Scale.Compute *= f
		d.Scale.Memory *= f
	}
	catalog := gpu.DevnetCatalog(d.Scale)
	cfg.Log.Info("emulated catalog", "compute_scale", d.Scale.Compute, "memory_scale", d.Scale.Memory)

	// On a machine with a usable GPU, node 0 proves on it and claims what
	// it measured there (as "devnet GPU", not its catalog model, so its
	// challenges stay devnet-sized); its memory claim is capped so the
	// VRAM proof's lanes fit the devnet's deadlines.
	var gpuBackend *cuda.Backend
	var gpuMeasured gpu.Throughput
	if cfg.GPU == "auto" {
		b, err := cuda.Open(cuda.Options{})
		if err != nil {
			cfg.Log.Info("devnet: every node on the CPU", "reason", err)
		} else if gpuMeasured, err = gpu.MeasureAll(ctx, b); err != nil {
			b.Close()
			cfg.Log.Warn("devnet: GPU measurement failed, every node on the CPU", "err", err)
		} else {
			gpuBackend = b
			d.GPU = b.Device().Name
			cfg.Log.Info("devnet: node 0 proves on the GPU", "device", d.GPU, "int8_tops", gpuMeasured.Int8TOPS,
				"bf16_tflops", gpuMeasured.BF16TFLOPS, "hash_ghps", gpuMeasured.HashGHps)
		}
	}
	honest := cfg.Nodes - adv
	roles := make([]node.Role, 0, cfg.Nodes)
	for range honest {
		roles = append(roles, node.RoleHonest)
	}
	for _, r := range node.Roles {
		for range cfg.Adversaries[r] {
			roles = append(roles, r)
		}
	}
	// ADVERSARY wiring: colluders and sybils each form a clique that knows
	// its members' peer IDs (their keys are made before the nodes start);
	// relay j forwards to honest node j+1, whose device (one worker,
	// serialized) it shares.
	cliques := map[node.Role][]peer.ID{}
	for i, role := range roles {
		if role != node.RoleColluder && role != node.RoleSybil && role != node.RoleColludingChallenger && (role != node.RoleHonest || cfg.PreTrusted <= 0) {
			continue
		}
		dir := filepath.Join(d.dir, fmt.Sprintf("node-%02d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			d.Close()
			return nil, err
		}
		key, err := p2p.LoadOrCreateKey(filepath.Join(dir, node.KeyFile))
		if err != nil {
			d.Close()
			return nil, err
		}
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			d.Close()
			return nil, err
		}
		cliques[role] = append(cliques[role], id)
	}
	// Colluding challengers pair up in order, a challenger then its
	// target, each pair with its own side channel; an odd one out has no
	// partner.
	leaks := map[int]*node.Leak{}
	if pair := cliques[node.RoleColludingChallenger]; len(pair) > 0 {
		first := slices.Index(roles, node.RoleColludingChallenger)
		for j := 0; j+1 < len(pair); j += 2 {
			l := node.NewLeak(pair[j], pair[j+1])
			leaks[first+j], leaks[first+j+1] = l, l
		}
		delete(cliques, node.RoleColludingChallenger)
	}
	// The first cfg.PreTrusted honest nodes of each shard are pre-trusted
	// by all (their keys were made above).
	trusted := map[int]int{}
	for _, id := range cliques[node.RoleHonest] {
		if s := p2p.ShardOf(id, max(cfg.Shards, 1)); trusted[s] < cfg.PreTrusted {
			trusted[s]++
			base.Scoring.PreTrusted = append(base.Scoring.PreTrusted, id.String())
		}
	}
	delete(cliques, node.RoleHonest) // not a clique
	// Devices of two identities: relay j's accomplice is honest node j+1,
	// so no device serves more than one relay besides its owner; the
	// shared-device identities come in pairs (an odd last one joins the
	// pair before it). On the host, a shared device is one CPU backend
	// serializing its workloads (sharedDevice); with emulated devices it is
	// one emulated device, which serializes them itself.
	nRelay, nShared := cfg.Adversaries[node.RoleRelay], cfg.Adversaries[node.RoleSharedDevice]
	accomplices := make([]devnetDevice, nRelay)
	pairs := map[int]devnetDevice{}
	shared := 0
	emulatedAll := cfg.Devices == DevicesEmulated
	relays := 0
	// Genesis on a whole second after the warm-up; every node agrees.
	genesis := time.Now().Add(cfg.Warmup + time.Second).Truncate(time.Second)
	d.Clock = genesis
	for i, role := range roles {
		c := base
		c.P2P = node.P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}, ConnLow: base.P2P.ConnLow, ConnHigh: base.P2P.ConnHigh, Shards: max(cfg.Shards, 1), ShareTopology: true}
		if i > 0 && !cfg.Mocknet {
			c.P2P.Bootstrap = []string{d.Nodes[0].Addrs()[0].String()}
			if i > 1 {
				c.P2P.Bootstrap = append(c.P2P.Bootstrap, d.Nodes[1+rand.IntN(i-1)].Addrs()[0].String())
			}
		}
		c.Challenge.Genesis = genesis.Unix()
		c.Challenge.EpochLength = node.Duration(cfg.EpochLength)
		c.Challenge.TargetDuration = node.Duration(cfg.Target)
		c.Challenge.Slack = cfg.Slack
		if cfg.Allowance > 0 {
			c.Challenge.Allowance = node.Duration(cfg.Allowance)
		}
		if cfg.K > 0 && cfg.M > 0 {
			c.Challenge.K, c.Challenge.M = cfg.K, cfg.M
		}
		if len(cfg.Workloads) > 0 {
			c.Challenge.Workloads = cfg.Workloads
		}
		if i == slices.IndexFunc(roles, func(r node.Role) bool { return !r.Adversary() }) {
			c.Challenge.ExportOutputs = cfg.ExportOutputs
		}
		c.Challenge.Waves = cfg.Waves
		if cfg.ChallengeRate > 0 {
			c.Challenge.Rate = cfg.ChallengeRate
		}
		c.Device.Model = "devnet CPU"
		c.Device.VRAMBytes = vram
		if f := cfg.ClaimFraction; f > 0 && f < 1 && role.ClaimFactor() == 1 {
			c.Device.Int8TOPS, c.Device.BF16TFLOPS, c.Device.HashGHps = f*measured.Int8TOPS, f*measured.BF16TFLOPS, f*measured.HashGHps
			c.Device.VRAMBytes = uint64(f * float64(vram))
		}
		c.Metrics.Listen = ""
		var backend gpu.Backend = gpu.NewCPU(gpu.WithWorkers(cfg.Workers))
		accomplice := i >= 1 && i <= nRelay && role == node.RoleHonest
		if (accomplice || role == node.RoleSharedDevice) && !emulatedAll {
			backend = &sharedDevice{Backend: backend}
		}
		opts := []node.Option{node.WithRole(role), node.WithMeasured(measured), node.WithBackend(backend), node.WithLogger(cfg.Log.With("node", i)),
			node.WithClique(cliques[role]), node.WithCatalog(catalog)}
		model, hold, emulated := role.EmulatedDevice() // ADVERSARY wiring: sibling, inflate, vram-dodger
		switch {
		case emulatedAll && !emulated && role != node.RoleRelay:
			model, hold, emulated = EmulatedHonestModel, 1, true
		case role == node.RoleHonest && i >= max(honest-cfg.Emulated, 1+nRelay):
			model, hold, emulated = EmulatedHonestModel, 1, true
		}
		// The device this node proves on: its own, or the one it shares.
		var dev devnetDevice
		group := -1
		if role == node.RoleSharedDevice {
			group = min(shared/2, max(nShared/2-1, 0))
			shared++
			dev = pairs[group]
		}
		switch {
		case dev.b != nil:
		case role == node.RoleRelay && emulatedAll:
			dev = accomplices[relays] // it has no device of its own
		case emulated:
			p := c.Challenge.Planner()
			p.Catalog = catalog
			// An over-claimer (slow, late-junk, underpowered) has a
			// device 1/ClaimFactor as fast as the model it reports.
			e, t, err := emulatedBackend(backend, p, model, hold, 1/role.ClaimFactor(), Jitter, uint64(i))
			if err != nil {
				d.Close()
				return nil, err
			}
			d.emulated = append(d.emulated, e)
			dev = devnetDevice{b: e, t: t, emulated: true}
		default:
			dev = devnetDevice{b: backend, t: measured}
		}
		if group >= 0 {
			pairs[group] = dev
		}
		if accomplice {
			accomplices[i-1] = dev
		}
		if dev.emulated {
			// The claim is what the device reports: its model, memory
			// and rates.
			c.Device.Model, c.Device.VRAMBytes = "", 0
			c.Device.Int8TOPS, c.Device.BF16TFLOPS, c.Device.HashGHps = 0, 0, 0
		}
		opts = append(opts, node.WithBackend(dev.b), node.WithMeasured(dev.t))
		if l := leaks[i]; l != nil {
			opts = append(opts, node.WithLeak(l))
		}
		if role == node.RoleRelay {
			opts = append(opts, node.WithAccomplice(accomplices[relays].b))
			relays++
		}
		if cfg.Mocknet {
			addr := multiaddr.StringCast(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", i>>16&255, i>>8&255, i&255))
			opts = append(opts, node.WithCompactStore(), node.WithHeartbeat(cfg.Heartbeat), node.WithScoreInspect(10*time.Second), node.WithLoss(cfg.Loss), node.WithHost(func(key crypto.PrivKey) (host.Host, error) {
				return d.mocknet.AddPeer(key, addr)
			}))
		}
		if i == 0 && gpuBackend != nil {
			c.Device.Model = "devnet GPU"
			c.Device.VRAMBytes = min(uint64(gpuMeasured.HashGHps*1e9*cfg.Target.Seconds()/float64(vs.Rounds+vs.ReadsPerBlock)*gpu.VRAMBlockBytes/vs.Fill), 256<<20)
			opts = append(opts, node.WithMeasured(gpuMeasured), node.WithBackend(gpuBackend), node.WithOwnedBackend(gpuBackend.Close))
		}
		n, err := node.New(filepath.Join(d.dir, fmt.Sprintf("node-%02d", i)), c, opts...)
		if err == nil {
			err = n.Start(ctx)
		}
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("devnet: node %d: %w", i, err)
		}
		d.Nodes = append(d.Nodes, n)
	}
	if cfg.Mocknet {
		if err := d.linkShards(cfg.Degree); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// linkShards links and connects each mocknet node to the next one of its
// shard in a ring, so that every shard is connected, and to random peers of
// the shard until it has at least degree connections there (every other
// member, in a shard of degree + 1 or fewer). Mocknet peers cannot dial
// anyone they are not linked to, so this graph is all the sim's
// discovery: with the ring and a few random dials alone, a peer could end
// up with two or three links, all to peers the honest ones graylist, its
// claims heard by none of them and never challenged (a 400-peer sim left
// two colluders so); with a floor of degree/2 + 1, a 1,000-peer run
// graylisted an honest peer with two honest links, whose claims no honest
// peer heard by the end (docs/sim.md).
func (d *Devnet) linkShards(degree int) error {
	byShard := map[int][]*node.Node{}
	for _, n := range d.Nodes {
		s, _ := n.Shard()
		byShard[s] = append(byShard[s], n)
	}
	for _, members := range byShard {
		for _, l := range shardLinks(len(members), degree, rand.Perm) {
			a, b := members[l[0]].ID(), members[l[1]].ID()
			if _, err := d.mocknet.LinkPeers(a, b); err != nil {
				return fmt.Errorf("mocknet link: %w", err)
			}
			if _, err := d.mocknet.ConnectPeers(a, b); err != nil {
				return fmt.Errorf("mocknet connect: %w", err)
			}
		}
	}
	return nil
}

// shardLinks returns the links (pairs of member indices, each pair once)
// of a shard of n members for linkShards: a ring, then, for each member in
// turn, links to members in the order perm gives until it has
// min(degree, n − 1) (degree 0 means 8).
func shardLinks(n, degree int, perm func(int) []int) [][2]int {
	if degree <= 0 {
		degree = 8
	}
	var out [][2]int
	linked := map[[2]int]bool{}
	links := make([]int, n)
	link := func(a, b int) {
		if a == b || linked[[2]int{a, b}] || linked[[2]int{b, a}] {
			return
		}
		linked[[2]int{a, b}] = true
		links[a]++
		links[b]++
		out = append(out, [2]int{a, b})
	}
	for i := range n {
		link(i, (i+1)%n)
	}
	want := min(degree, n-1)
	for a := range n {
		for _, b := range perm(n) {
			if links[a] >= want {
				break
			}
			link(a, b)
		}
	}
	return out
}

// Epoch returns the current epoch of the devnet.
func (d *Devnet) Epoch() int64 {
	if time.Now().Before(d.Clock) {
		return -1
	}
	return int64(time.Since(d.Clock) / d.EpochLength)
}

// Close stops every node (graceful: stores flushed) and removes a
// temporary data folder. Nodes on loopback stop one by one in reverse
// order, the bootstrap node last; on mocknet (the sim's thousand nodes)
// eight stop at a time.
func (d *Devnet) Close() error {
	var errs []error
	if d.mocknet != nil {
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for _, n := range d.Nodes {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				err := n.Close()
				<-sem
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}()
		}
		wg.Wait()
	} else {
		for _, n := range slices.Backward(d.Nodes) {
			errs = append(errs, n.Close())
		}
	}
	d.Nodes = nil
	if d.mocknet != nil {
		errs = append(errs, d.mocknet.Close())
	}
	if d.tempDir {
		errs = append(errs, os.RemoveAll(d.dir))
	}
	return errors.Join(errs...)
}
