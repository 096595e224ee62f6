package devnet

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/node"
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
	// ExportOutputs, when set, is the first honest node's [challenge]
	// export_outputs: the llm answers it verifies as passing.
	ExportOutputs string
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
// model on inner, holding hold of its memory and computing at speed (1: the
// model's) of its rates, varying by jitter (seeded with seed:
// gpu.Budget.Jitter), with the rates a claim of that twin is held to
// (p.RatesFor: the floors) as a measured throughput for its claim.
func emulatedBackend(inner gpu.Backend, p challenge.Planner, model string, hold, speed, jitter float64, seed uint64) (*gpu.Emulated, gpu.Throughput, error) {
	spec, ok := p.Lookup(gpu.DevnetPrefix + model)
	if !ok {
		return nil, gpu.Throughput{}, fmt.Errorf("devnet: no emulated %s in the catalog", model)
	}
	r := p.RatesFor(&pb.DeviceClaim{Model: spec.Model, Count: 1})
	e, err := gpu.NewEmulated(inner, gpu.Budget{Model: spec.Model, Int8OPS: speed * r.Int8OPS, BF16FLOPS: speed * r.BF16FLOPS,
		HashesPerSec: speed * r.HashesPerSec, MemBytes: uint64(hold * float64(r.MemBytes)), Jitter: jitter, JitterSeed: seed,
		LLMInt8OPS: speed * r.LLMInt8OPS, LLMBytesPerSec: speed * r.LLMBytesPerSec})
	if err != nil {
		return nil, gpu.Throughput{}, err
	}
	return e, gpu.Throughput{Int8TOPS: r.Int8OPS / 1e12, BF16TFLOPS: r.BF16FLOPS / 1e12, HashGHps: r.HashesPerSec / 1e9, LLMInt8TOPS: r.LLMInt8OPS / 1e12}, nil
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
