package devnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/cuda"
	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/multiformats/go-multiaddr"
)

// Config describes a local network of real nodes in one process, on
// 127.0.0.1 with real TCP and QUIC transports and one Badger store each.
type Config struct {
	// Nodes is the total number of nodes, adversaries included.
	Nodes int
	// Adversaries maps each adversary role to how many nodes play it.
	Adversaries map[node.Role]int
	// DataDir holds one folder per node; empty means a temporary folder
	// removed by Close.
	DataDir string
	// Target is how long a challenge should take an honest node.
	Target time.Duration
	// EpochLength of 0 picks max(4 s, 3·Target per node).
	EpochLength time.Duration
	// Slack of 0 is 3: every node of a devnet shares one machine, so an
	// honest prover can be slowed by its neighbours' work, which a real
	// node on its own device is not (the default config says 2.5).
	Slack float64
	// Warmup is the time between starting the nodes and epoch 0.
	Warmup time.Duration
	// Workers is the number of CPU threads each node proves with; 0 means
	// 1, so that N nodes sharing a small machine behave like N single-core
	// devices instead of N peers fighting over every core.
	Workers int
	// GPU is "auto" to prove on the machine's CUDA GPU for node 0 (an
	// honest node) when one is usable, "off" to keep every node on the CPU.
	GPU string
	// Log receives every node's logs.
	Log *slog.Logger
	// Mocknet runs the nodes over libp2p's in-memory network instead of
	// TCP and QUIC on 127.0.0.1 (poai-sim): each node links to Degree
	// random peers of its shard, links delay every write by Latency, and
	// the score stores are compact (scoring.Params.Compact).
	Mocknet bool
	// Degree is how many peers of its shard each mocknet node dials; 0
	// means 8.
	Degree int
	// Latency is the one-way delay of every mocknet link.
	Latency time.Duration
	// Shards splits the network into shards ([p2p] shards); 0 or 1 keeps
	// one.
	Shards int
	// Allowance of 0 keeps the default config's fixed part of deadlines.
	Allowance time.Duration
	// ChallengeRate of 0 keeps the default config's ([challenge] rate).
	ChallengeRate float64
	// Waves is [challenge] waves: 0 spreads challenges over the epoch.
	Waves int
	// Workloads, when set, replaces [challenge] workloads.
	Workloads []string
	// Heartbeat, when positive, replaces gossipsub's 1 s heartbeat.
	Heartbeat time.Duration
	// Loss is the fraction of incoming messages each mocknet node loses
	// (WithLoss).
	Loss float64
	// K and M, when set, replace [challenge] k and m (int8 inner and
	// column dimensions): smaller ones shrink openings and the least
	// work a verifier's share allows.
	K, M int
	// MeasureReps is gpu.MeasureShapes.Reps for the CPU measurement every
	// claim derives from (0: 3).
	MeasureReps int
	// ClaimFraction, in (0, 1], is the share of the measured throughput
	// and memory the nodes claim (0: 1), the rest kept as headroom: a node
	// claiming less than its device has makes no claim it cannot meet,
	// so this is honest. A slow adversary claims SlowClaimFactor times the
	// whole measured device.
	ClaimFraction float64
	// PreTrusted is how many honest nodes of each shard every node
	// pre-trusts ([scoring] pretrusted), as a network's bootstrap
	// operators would be: proven judges from genesis (Node.proven). The
	// first honest nodes of each shard are taken; 0 pre-trusts nobody.
	PreTrusted int
	// Devices is DevicesHost (or empty) or DevicesEmulated.
	Devices DeviceMode
	// Emulated is how many honest nodes (the last ones, past any relay's
	// accomplice) prove on an emulated EmulatedHonestModel
	// (gpu.Emulated, with the devnet catalog's figures) and claim it,
	// instead of claiming their CPU as "devnet CPU". The sibling, inflate
	// and vram-dodger adversaries always have emulated devices.
	Emulated int
}

// DeviceMode is what a devnet's nodes prove on.
type DeviceMode string

const (
	// DevicesHost: nodes prove on the host's CPU, which they all share
	// (only the roles that need one, and Config.Emulated honest
	// nodes, get an emulated device). Identities sharing a device
	// (relay, shared-device) share one serialized CPU backend. The host's
	// own speed shows in every figure.
	DevicesHost DeviceMode = "host"
	// DevicesEmulated: every node proves on an emulated device of its
	// own (gpu.Emulated, with Jitter): an EmulatedHonestModel twin,
	// or its role's device (sibling, inflate, vram-dodger). The host
	// computes the arithmetic, the device's budget decides when the
	// answer leaves, so honest nodes no longer share a device through
	// the host's cores. A relay proves on its accomplice's device and
	// claims its model; the shared-device identities of a pair share
	// one. Roles that lie in their claim claim from their device (slow:
	// 8 times its rates); roles that compute only part of the answer
	// (lazy, replay, ...) still compute that part on the host. The
	// catalog's compute scale is shared by the nodes (each gets cores /
	// nodes of the headroom), and Devnet.Overruns counts when the host
	// is slower than the devices anyway.
	DevicesEmulated DeviceMode = "emulated"
)

// Jitter is σ of the emulated devices' run-to-run variation
// (gpu.Budget.Jitter): 2 %, the order of the difference between two
// honest H200 catalog challenges (commitments after 2,066 and 2,007 ms,
// docs/measurements/catalog-challenge-2026-11-30.log).
const Jitter = 0.02

// MaxOverrunShare is the share of emulated workloads that may overrun
// (Devnet.Overruns) before a run measures its host rather than its
// nodes: above it, `poai devnet` fails as a test-bed failure that blames
// no node.
const MaxOverrunShare = 0.05

// EmulatedHonestModel is the catalog model whose emulated twin honest
// devnet nodes with an emulated device have (Config.Emulated).
const EmulatedHonestModel = "A100 80GB SXM"

// Emulated devices of a devnet (gpu.DevnetCatalog, fitDevnetScale).
const (
	// EmulatedHeadroom is the share of the CPU's measured rate, on the
	// workload where the catalog is fastest relative to the CPU, that the
	// fastest emulated model gets: the CPU must finish the arithmetic
	// before the emulated device would, though its neighbours share it.
	EmulatedHeadroom = 0.5
	// EmulatedVRAMTargets is how many targets the VRAM proof of the
	// emulated model with the most memory per hash rate (the H200) takes;
	// the A100 80GB's takes 0.97 of it, the A100 40GB's half.
	EmulatedVRAMTargets = 4
)

// fitDevnetScale returns the scale of a devnet's emulated catalog for a
// CPU measured at m: throughputs shrink by one factor, so that the
// fastest catalog floor of each workload (peak × the planner's
// efficiency for the products, the hash rate for VRAM) is at most
// EmulatedHeadroom of the CPU's rate; memory shrinks so that the longest
// VRAM proof of the catalog (memory over hash rate, the H200's) takes
// EmulatedVRAMTargets targets. The ratios between models, and between one
// model's workloads, are the catalog's.
func fitDevnetScale(m gpu.Throughput, p challenge.Planner) gpu.DevnetScale {
	var int8, bf16, hash, memPerHash float64
	for _, d := range gpu.Catalog {
		int8 = max(int8, d.FastestExactInt8()*p.Efficiency.Int8)
		bf16 = max(bf16, d.FastestAcceptableBF16()*p.Efficiency.BF16)
		hash = max(hash, d.HashGHps)
		memPerHash = max(memPerHash, float64(d.VRAMBytes)/(d.HashGHps*1e9))
	}
	compute := EmulatedHeadroom * min(m.Int8TOPS/int8, m.BF16TFLOPS/bf16, m.HashGHps/hash)
	// A VRAM proof of memory M at hash rate H takes about
	// Fill·M/32·(Rounds + ReadsPerBlock)/H seconds.
	vs := p.VRAM
	longest := vs.Fill * memPerHash / gpu.VRAMBlockBytes * float64(vs.Rounds+vs.ReadsPerBlock)
	return gpu.DevnetScale{Compute: compute, Memory: compute * EmulatedVRAMTargets * p.Target.Seconds() / longest}
}

// emulatedBackend returns a device emulating the devnet twin of catalog
// model on inner, holding hold of its memory, varying by jitter (seeded
// with seed: gpu.Budget.Jitter), with the rates a claim of
// that twin is held to (p.RatesFor: the floors), and those rates as a
// measured throughput for its claim.
func emulatedBackend(inner gpu.Backend, p challenge.Planner, model string, hold, jitter float64, seed uint64) (*gpu.Emulated, gpu.Throughput, error) {
	spec, ok := p.Lookup(gpu.DevnetPrefix + model)
	if !ok {
		return nil, gpu.Throughput{}, fmt.Errorf("devnet: no emulated %s in the catalog", model)
	}
	r := p.RatesFor(&pb.DeviceClaim{Model: spec.Model, Count: 1})
	e, err := gpu.NewEmulated(inner, gpu.Budget{Model: spec.Model, Int8OPS: r.Int8OPS, BF16FLOPS: r.BF16FLOPS,
		HashesPerSec: r.HashesPerSec, MemBytes: uint64(hold * float64(r.MemBytes)), Jitter: jitter, JitterSeed: seed})
	if err != nil {
		return nil, gpu.Throughput{}, err
	}
	return e, gpu.Throughput{Int8TOPS: r.Int8OPS / 1e12, BF16TFLOPS: r.BF16FLOPS / 1e12, HashGHps: r.HashesPerSec / 1e9}, nil
}

// ParseAdversaries parses "slow=1,lazy=2" into a role count map.
func ParseAdversaries(s string) (map[node.Role]int, error) {
	out := map[node.Role]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, count, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("adversary %q: want role=count", part)
		}
		r, err := node.ParseRole(name)
		if err != nil {
			return nil, err
		}
		if !r.Adversary() {
			return nil, fmt.Errorf("adversary %q: honest is not an adversary role", part)
		}
		c, err := strconv.Atoi(count)
		if err != nil || c < 0 {
			return nil, fmt.Errorf("adversary %q: count must be a non-negative integer", part)
		}
		out[r] += c
	}
	return out, nil
}

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
		c.P2P = node.P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}, ConnLow: base.P2P.ConnLow, ConnHigh: base.P2P.ConnHigh, Shards: max(cfg.Shards, 1)}
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
			e, t, err := emulatedBackend(backend, p, model, hold, Jitter, uint64(i))
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

// PeerReport is one line of the devnet report.
type PeerReport struct {
	PeerID       string    `json:"peer_id"`
	Role         node.Role `json:"role"`
	Challenges   int       `json:"challenges_received"`
	Passed       int       `json:"passed"`
	Failed       int       `json:"failed"`
	LatencyP50   float64   `json:"latency_p50_ms"`
	LatencyP99   float64   `json:"latency_p99_ms"`
	MaxDeviation float64   `json:"max_score_deviation"`
	Accuracy     float64   `json:"accuracy"`
	FinalScore   float64   `json:"final_score"`
	ClaimedTOPS  float64   `json:"claimed_int8_tops"`
	Backend      string    `json:"backend"`
	// GossipScore is the mean over the honest peers of its shard of the
	// gossipsub score each gives the peer (application score plus the
	// router's counters) or, where one is not connected to it, of the
	// application score it holds; Graylisted is true when it is below
	// p2p.GraylistThreshold.
	GossipScore float64 `json:"gossip_score"`
	Graylisted  bool    `json:"graylisted"`
	// CaughtEpoch is the first epoch from which the observer's trust
	// round kept the peer's application score below the graylist
	// threshold to the end; -1 if it never did.
	CaughtEpoch int64 `json:"caught_epoch"`
	// Trust is the first honest observer's EigenTrust standing of the
	// peer at the end (trust, relative trust, bad fraction, evidence).
	Trust       scoring.PeerTrust `json:"trust"`
	ClaimedBF16 float64           `json:"claimed_bf16_tflops"`
	// HeardBy counts the honest peers of its shard holding a claim of the
	// peer heard within the last [challenge] peer_ttl_epochs, and
	// HonestLinks those connected to it: a peer no honest peer hears
	// cannot be challenged, and one linked only to peers the honest ones
	// graylist is heard by none.
	HeardBy     int `json:"heard_by"`
	HonestLinks int `json:"honest_links"`
	// HonestViews counts the honest peers of its shard (the views
	// GossipScore averages) and GraylistedBy those whose score for it is
	// below p2p.GraylistThreshold: a peer graylisted by most views whose
	// mean stays above the threshold is out of most of the honest mesh.
	HonestViews  int `json:"honest_views"`
	GraylistedBy int `json:"graylisted_by"`
	// Answered and ProveFailed are the peer's own counts (Stats): the
	// challenges of it it proved and committed, and those whose proof it
	// abandoned (past its limit, or an error). Against Challenges, the
	// observer's attested record, they tell a challenge nobody judged
	// from one never received.
	Answered    int `json:"answered"`
	ProveFailed int `json:"prove_failed"`
	// ChallengerSlots and VerifierSlots are the slots the observer saw
	// the peer hold: the epochs and targets whose challenger ranking it
	// headed in the observer's schedule (issued or not), and the
	// verifier places of the challenges the observer followed. A slot
	// held by a peer that never acts on it is a challenge not issued, or
	// a verdict never given.
	ChallengerSlots int `json:"challenger_slots"`
	VerifierSlots   int `json:"verifier_slots"`
}

// ReportSchema is the version of Report's JSON layout: 2 since every
// field is snake_case (measured.int8_tops, not measured.Int8TOPS).
const ReportSchema = 2

// Report is the devnet's result.
type Report struct {
	// Schema is ReportSchema.
	Schema       int            `json:"schema"`
	Nodes        int            `json:"nodes"`
	Epochs       int64          `json:"epochs"`
	EpochLength  string         `json:"epoch_length"`
	Measured     gpu.Throughput `json:"measured"`
	GPU          string         `json:"gpu,omitempty"`
	Peers        []PeerReport   `json:"peers"`
	HonestMin    float64        `json:"honest_min_score"`
	AdversaryMax float64        `json:"adversary_max_score"`
	HonestPass   float64        `json:"honest_pass_rate"`
	Separated    bool           `json:"separated"`
	// AllCaught is true when every adversary is graylisted and below the
	// honest minimum; HonestGraylisted counts honest peers graylisted.
	AllCaught        bool `json:"all_caught"`
	HonestGraylisted int  `json:"honest_graylisted"`
	// Unobserved counts peers left out because no honest peer shares
	// their shard.
	Unobserved int `json:"unobserved,omitempty"`
	// Emulator reports the emulated devices' overruns; nil without any.
	Emulator *EmulatorReport `json:"emulator,omitempty"`
	Elapsed  time.Duration   `json:"-"`
	ElapsedS float64         `json:"elapsed_s"`
}

// Report builds the report. Counts, latencies, deviation and accuracy are
// the view of one honest observer (the first honest node other than the
// peer); the final score is the mean over every honest node's score of the
// peer, itself excluded. Separated is true when every adversary scores
// below every honest peer.
func (d *Devnet) Report() (Report, error) {
	r := Report{Schema: ReportSchema, Nodes: len(d.Nodes), Epochs: max(d.Epoch(), 0), EpochLength: d.EpochLength.String(),
		Measured: d.Measured, GPU: d.GPU, HonestMin: math.Inf(1), AdversaryMax: math.Inf(-1)}
	var honestPass, honestTotal int
	for _, p := range d.Nodes {
		var observer *node.Node
		var sum float64
		var views int
		for _, o := range d.Nodes {
			if o == p || o.Role().Adversary() || !sameShard(o, p) {
				continue
			}
			if observer == nil {
				observer = o
			}
			sum += o.Book().Score(p.ID().String())
			views++
		}
		if observer == nil {
			r.Unobserved++ // a shard without an honest peer: nobody to judge it
			continue
		}
		s, err := observer.Book().Summarize(p.ID().String())
		if err != nil {
			return r, err
		}
		pr := PeerReport{
			PeerID: p.ID().String(), Role: p.Role(), Challenges: s.Challenges, Passed: s.Passed, Failed: s.Failed,
			LatencyP50: s.LatencyP50MS, LatencyP99: s.LatencyP99MS, MaxDeviation: s.MaxDeviation, Accuracy: s.Accuracy,
			FinalScore: sum / float64(views), ClaimedTOPS: p.Claim().GetInt8Tops(), ClaimedBF16: p.Claim().GetBf16Tflops(),
			Backend: p.Claim().GetBackend(),
		}
		var gsum float64
		var gviews int
		for _, o := range d.Nodes {
			if o == p || o.Role().Adversary() || !sameShard(o, p) {
				continue
			}
			// An honest peer not connected to p has no router score for
			// it; the application score it holds is what its router
			// would start from on a connection (graylisted or not).
			g, ok := o.GossipScores()[p.ID()]
			if !ok {
				g = o.Observer().AppScore(p.ID())
			}
			gsum += g
			gviews++
			if g < p2p.GraylistThreshold {
				pr.GraylistedBy++
			}
			if o.Observer().Hears(p.ID()) {
				pr.HeardBy++
			}
			if slices.Contains(o.ConnectedPeers(), p.ID()) {
				pr.HonestLinks++
			}
		}
		if gviews > 0 {
			pr.GossipScore = gsum / float64(gviews)
		}
		pr.HonestViews = gviews
		st := p.Stats()
		pr.Answered, pr.ProveFailed = st.Answered, st.ProveFailed
		pr.ChallengerSlots, pr.VerifierSlots = observer.Observer().Slots(p.ID(), 0, math.MaxUint64)
		pr.Graylisted = pr.GossipScore < p2p.GraylistThreshold
		pr.CaughtEpoch = caughtEpoch(observer, p.ID(), r.Epochs)
		pr.Trust, _ = observer.Book().PeerTrust(p.ID().String())
		if p.Role().Adversary() {
			r.AdversaryMax = math.Max(r.AdversaryMax, pr.FinalScore)
		} else {
			r.HonestMin = math.Min(r.HonestMin, pr.FinalScore)
			honestPass += pr.Passed
			honestTotal += pr.Challenges
		}
		r.Peers = append(r.Peers, pr)
	}
	sort.SliceStable(r.Peers, func(i, j int) bool { return r.Peers[i].FinalScore > r.Peers[j].FinalScore })
	if honestTotal > 0 {
		r.HonestPass = float64(honestPass) / float64(honestTotal)
	}
	if math.IsInf(r.AdversaryMax, -1) {
		r.AdversaryMax = 0
	}
	r.Separated = r.AdversaryMax < r.HonestMin
	r.AllCaught = r.Separated
	for _, p := range r.Peers {
		if p.Role.Adversary() && !p.Graylisted {
			r.AllCaught = false
		}
		if !p.Role.Adversary() && p.Graylisted {
			r.HonestGraylisted++
		}
	}
	if w, o := d.Overruns(); w > 0 {
		r.Emulator = &EmulatorReport{Workloads: w, Overruns: o, Share: float64(o) / float64(w)}
		r.Emulator.Overloaded = r.Emulator.Share > MaxOverrunShare
	}
	return r, nil
}

// EmulatorReport is what a devnet's emulated devices say of the host
// (Devnet.Overruns): Overloaded when more than MaxOverrunShare of their
// workloads overran, a test-bed failure that blames no node.
type EmulatorReport struct {
	Workloads  uint64  `json:"workloads"`
	Overruns   uint64  `json:"overruns"`
	Share      float64 `json:"overrun_share"`
	Overloaded bool    `json:"overloaded"`
}

// sameShard reports whether a and b share a shard: only then does one
// judge the other.
func sameShard(a, b *node.Node) bool {
	sa, _ := a.Shard()
	sb, _ := b.Shard()
	return sa == sb
}

// caughtEpoch returns the first epoch from which every trust round of
// observer put p's application score below the graylist threshold, or -1.
// A peer whose claim observer cannot challenge (FlagUnverifiable) counts
// as caught from observer's first round.
func caughtEpoch(observer *node.Node, p peer.ID, last int64) int64 {
	hist, err := observer.Book().TrustHistory(0, uint64(max(last, 0)))
	if err != nil || len(hist) == 0 {
		return -1
	}
	if observer.Observer().Unverifiable(p) {
		return int64(hist[0].Epoch) // nobody can challenge its claim: graylisted from the start
	}
	minEv := scoring.DefaultTrustParams().MinEvidence
	caught := int64(-1)
	for _, v := range hist {
		if node.AppScore(v.Peers[p.String()], minEv) < p2p.GraylistThreshold {
			if caught < 0 {
				caught = int64(v.Epoch)
			}
		} else {
			caught = -1
		}
	}
	return caught
}

// sharedDevice is one device serving two peers (a relay and its
// accomplice): workloads run one at a time. ADVERSARY wiring, devnet only.
type sharedDevice struct {
	mu sync.Mutex
	gpu.Backend
}

func (s *sharedDevice) streamer() gpu.Streamer { return s.Backend.(gpu.Streamer) }

func (s *sharedDevice) MatMulInt8(ctx context.Context, seed gpu.Seed, sh gpu.Shape) (*gpu.Int32Matrix, [][32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Backend.MatMulInt8(ctx, seed, sh)
}

func (s *sharedDevice) MatMulBF16(ctx context.Context, seed gpu.Seed, sh gpu.Shape) (*gpu.Float32Matrix, [][32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Backend.MatMulBF16(ctx, seed, sh)
}

func (s *sharedDevice) VRAM(ctx context.Context, seed gpu.Seed, p gpu.VRAMParams) ([][32]byte, [][32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Backend.VRAM(ctx, seed, p)
}

func (s *sharedDevice) LeavesInt8(ctx context.Context, seed gpu.Seed, sh gpu.Shape) ([][32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamer().LeavesInt8(ctx, seed, sh)
}

func (s *sharedDevice) RowsInt8(ctx context.Context, seed gpu.Seed, sh gpu.Shape, rows []int) (*gpu.Int32Matrix, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamer().RowsInt8(ctx, seed, sh, rows)
}

func (s *sharedDevice) LeavesBF16(ctx context.Context, seed gpu.Seed, sh gpu.Shape) ([][32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamer().LeavesBF16(ctx, seed, sh)
}

func (s *sharedDevice) RowsBF16(ctx context.Context, seed gpu.Seed, sh gpu.Shape, rows []int) (*gpu.Float32Matrix, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamer().RowsBF16(ctx, seed, sh, rows)
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
