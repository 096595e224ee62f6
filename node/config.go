package node

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pelletier/go-toml/v2"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// ParseWorkload maps a config name (int8, bf16, vram) to its workload.
func ParseWorkload(s string) (pb.Workload, error) {
	switch s {
	case "int8":
		return pb.Workload_WORKLOAD_GEMM_INT8, nil
	case "bf16":
		return pb.Workload_WORKLOAD_GEMM_BF16, nil
	case "vram":
		return pb.Workload_WORKLOAD_VRAM, nil
	case "llm":
		return pb.Workload_WORKLOAD_LLM, nil
	}
	return 0, fmt.Errorf("unknown workload %q (int8, bf16, vram, llm)", s)
}

// Planner returns the challenge planner this configuration describes.
func (c ChallengeConfig) Planner() challenge.Planner {
	return challenge.Planner{
		Target: c.TargetDuration.Std(), Slack: c.Slack, CatalogSlack: c.CatalogSlack, Allowance: c.Allowance.Std(),
		Openings: challenge.OpeningsFor(c.CheatFraction, c.PassProb),
		Int8K:    c.K, Int8M: c.M, BF16K: c.BF16K, BF16M: c.BF16M, MaxRows: c.MaxRows,
		MaxVerifierFraction: c.VerifierShare,
		VRAM:                challenge.VRAMSizing{Fill: c.VRAMFill, Rounds: c.VRAMRounds, ReadsPerBlock: c.VRAMReads, LaneReads: c.VRAMLaneReads},
		Efficiency:          challenge.Efficiency{Int8: c.EffInt8, BF16: c.EffBF16, LLMInt8: c.EffLLMInt8, LLMBandwidth: c.EffLLMBandwidth},
		Limits:              challenge.DefaultLimits(),
	}
}

// Duration is a time.Duration written as a string ("30s", "1m30s") in TOML.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Config is a node's configuration: the TOML file written by `poai init`,
// overridden by flags.
type Config struct {
	P2P       P2PConfig       `toml:"p2p"`
	Device    DeviceConfig    `toml:"device"`
	Challenge ChallengeConfig `toml:"challenge"`
	Scoring   ScoringConfig   `toml:"scoring"`
	API       APIConfig       `toml:"api"`
	Metrics   MetricsConfig   `toml:"metrics"`
	Log       LogConfig       `toml:"log"`
}

// P2PConfig is the [p2p] section.
type P2PConfig struct {
	Listen    []string `toml:"listen" comment:"Multiaddrs to listen on (TCP and QUIC)."`
	Bootstrap []string `toml:"bootstrap" comment:"Bootstrap peers: full multiaddrs ending in /p2p/<peer ID>."`
	MDNS      bool     `toml:"mdns" comment:"Discover peers on the local network with mDNS."`
	ConnLow   int      `toml:"conn_low" comment:"Connection manager low watermark: trimming stops here."`
	ConnHigh  int      `toml:"conn_high" comment:"Connection manager high watermark: above it connections are trimmed."`
	TraceFile string   `toml:"trace_file" comment:"Write gossipsub's event trace to this file as JSON lines (see 'poai trace summarize'); empty disables it."`
	// TraceRemote is p2p.Config.TraceRemote.
	TraceRemote string `toml:"trace_remote" comment:"Send gossipsub's event trace to a remote tracer at this multiaddr ending in /p2p/<peer ID> (libp2p's /libp2p/pubsub/tracer/1.0.0, e.g. 'poai trace collect'); empty disables it."`
	// ShareTopology makes the node answer and ask p2p.TopologyProtocol.
	ShareTopology bool `toml:"share_topology" comment:"Share this node's gossip mesh (peer IDs and gossipsub scores, no addresses) with peers that ask, and ask the peers that share for theirs, so the API and live page show the whole network. A mesh tells an eclipse attacker whom to displace: off unless you run a test network or want to be seen."`
	Shards        int  `toml:"shards" comment:"Number of shards the network is split into (p2p.ShardOf): a peer challenges, proves and attests only inside its own shard's topics. Every peer of a network must agree; 1 means one network-wide set of topics."`
}

// DeviceConfig is the [device] section: what this node claims. For a model
// in the catalog (gpu.Catalog), challengers hold the node to the catalog's
// figures whatever it claims; the figures below matter for other models.
type DeviceConfig struct {
	Backend    string  `toml:"backend" comment:"Proving backend: \"auto\" (CUDA when a driver and GPU are present, else CPU), \"cuda\" (fail without one) or \"cpu\"."`
	GPU        int     `toml:"gpu" comment:"CUDA device ordinal this node proves on (one node per GPU)."`
	CublasLt   string  `toml:"cublaslt" comment:"Path of libcublasLt.so for the GEMMs; empty looks it up on the loader path, \"off\" keeps to poai's embedded kernels."`
	Model      string  `toml:"model" comment:"Device model announced in the claim, e.g. \"NVIDIA H200\"; empty means the backend's own name."`
	Int8TOPS   float64 `toml:"int8_tops" comment:"Claimed dense int8 throughput in TOPS (10^12 ops/s); 0 means measure the backend at start."`
	BF16TFLOPS float64 `toml:"bf16_tflops" comment:"Claimed dense bf16 throughput in TFLOPS; 0 means measure the backend at start."`
	HashGHps   float64 `toml:"hash_ghps" comment:"Claimed SHA-256 rate for the VRAM proof, 10^9 hashes/s; 0 means measure the backend at start."`
	VRAMBytes  uint64  `toml:"vram_bytes" comment:"Claimed device memory in bytes; 0 means the backend's own figure."`
}

// ChallengeConfig is the [challenge] section: epochs, workload sizing and
// deadlines.
type ChallengeConfig struct {
	Genesis         int64    `toml:"genesis_unix" comment:"Start of epoch 0, Unix seconds. Every peer of a network must agree."`
	EpochLength     Duration `toml:"epoch_length" comment:"Length of an epoch. Every peer of a network must agree."`
	TargetDuration  Duration `toml:"target_duration" comment:"How long a challenge should take on the claimed device."`
	Workloads       []string `toml:"workloads" comment:"Workloads challenges rotate through: int8, bf16, vram, llm."`
	ExportOutputs   string   `toml:"export_outputs" comment:"Append the decoded tokens of every llm answer this node verifies as passing to this file, one JSON line each (challenge CID, target, epoch, model CID, prompt, tokens); empty disables it."`
	K               int      `toml:"int8_k" comment:"Inner dimension of the int8 product."`
	M               int      `toml:"int8_m" comment:"Column dimension (row width) of the int8 product."`
	BF16K           int      `toml:"bf16_k" comment:"Inner dimension of the bf16 product (at most 4096, where the bf16 tolerance was measured)."`
	BF16M           int      `toml:"bf16_m" comment:"Column dimension of the bf16 product."`
	MaxRows         int      `toml:"max_rows" comment:"Upper bound on the rows (n) of a product."`
	VerifierShare   float64  `toml:"max_verifier_fraction" comment:"Rows are added until a verifier's multiply-adds are at most this fraction of the prover's."`
	VRAMFill        float64  `toml:"vram_fill" comment:"Fraction of the claimed memory the VRAM proof occupies."`
	VRAMRounds      int      `toml:"vram_rounds" comment:"SHA-256 rounds per VRAM block: what recomputing a missing block costs."`
	VRAMReads       int      `toml:"vram_reads_per_block" comment:"Data-dependent reads per block of memory, over all lanes."`
	VRAMLaneReads   int      `toml:"vram_lane_reads" comment:"Reads per lane: a verifier recomputes lane_reads x (rounds+1) hashes per opened lane."`
	EffInt8         float64  `toml:"efficiency_int8" comment:"Fraction of a catalog device's int8 peak that deadlines assume (best implementation known)."`
	EffBF16         float64  `toml:"efficiency_bf16" comment:"Fraction of a catalog device's bf16 peak that deadlines assume."`
	EffLLMInt8      float64  `toml:"efficiency_llm_int8" comment:"Fraction of a catalog device's int8 peak that llm deadlines assume (prefill and decode compute; uncalibrated)."`
	EffLLMBandwidth float64  `toml:"efficiency_llm_bandwidth" comment:"Fraction of a catalog device's memory bandwidth that llm decode deadlines assume (uncalibrated)."`
	Slack           float64  `toml:"slack" comment:"Deadline = anticipated time x slack + allowance."`
	CatalogSlack    float64  `toml:"catalog_slack" comment:"Slack for claims of a catalog GPU model, whose rate is calibrated to measured figures (0: same as slack)."`
	Allowance       Duration `toml:"allowance" comment:"Fixed part of the deadline, for gossip and scheduling."`
	CheatFraction   float64  `toml:"cheat_fraction" comment:"Fraction f of rows a lazy prover might compute ..."`
	PassProb        float64  `toml:"pass_probability" comment:"... and the most it may pass with: openings = ceil(ln p / ln f)."`
	Verifiers       int      `toml:"verifiers" comment:"Verifiers chosen per challenge (rendezvous hashing on its epoch, target and challenger: challenge.VerifiersFor)."`
	Waves           int      `toml:"waves" comment:"0: each target is challenged in its own slot, spread over the epoch (many peers on one machine). N in 1..4: every challenger issues at N instants per epoch, each target in a wave fixed by the epoch and its peer ID, so identities sharing one device are challenged at once and one answer comes at least one anticipated time T late, missed when slack + allowance/T < 2 (catalog claims: catalog_slack 1.5 with T >= 4 x allowance); a passing retry then forgives only an isolated miss. 1 catches relays; for networks of dedicated devices; every peer of a network should agree."`
	Rate            float64  `toml:"rate" comment:"Fraction of peers challenged each epoch (1: every peer, every epoch). Below 1 each challenger draws from its own randomness whether to challenge a target, so no prover knows its epochs in advance, except that two challenges of a peer are at most ceil(2/rate) epochs apart: that last epoch of a gap is foreseeable."`
	PeerTTLEpochs   int      `toml:"peer_ttl_epochs" comment:"A peer whose claim is older than this many epochs is no longer challenged."`
}

// ScoringConfig is the [scoring] section.
type ScoringConfig struct {
	Initial         float64  `toml:"initial" comment:"Score of a peer nobody has attested yet, in [0,1]."`
	Alpha           float64  `toml:"alpha" comment:"Step of the moving average per attestation of weight 1, in (0,1]."`
	MinWeight       float64  `toml:"min_weight" comment:"Least weight of any attester's word, in [0,1]."`
	PreTrusted      []string `toml:"pretrusted" comment:"Peer IDs trusted a priori in EigenTrust (bootstrap operators); this node always trusts itself."`
	Decay           float64  `toml:"decay" comment:"EigenTrust: weight of an outcome per epoch of age, in (0,1]; old reputation fades."`
	RetentionEpochs int      `toml:"retention_epochs" comment:"Epochs of attestations, re-checks and trust vectors kept in the store."`
	RecheckFraction float64  `toml:"recheck_fraction" comment:"Fraction of other verifiers' challenges this node re-verifies itself (it always does when their verdicts disagree)."`
}

// APIConfig is the [api] section: the JSON API that `poai status`,
// `poai peers` and `poai scores` read.
type APIConfig struct {
	Listen string   `toml:"listen" comment:"Address of the HTTP API (/api/v1/...); empty disables it."`
	Token  string   `toml:"token" comment:"Bearer token the API requires, at least 32 characters (head -c 24 /dev/urandom | base64); mandatory when listen, or metrics listen, is not a loopback address."`
	Hosts  []string `toml:"hosts" comment:"Host names the API and /metrics answer to besides IP addresses, localhost and the listen host: any other Host header gets 403 (DNS rebinding)."`
}

// MetricsConfig is the [metrics] section.
type MetricsConfig struct {
	Listen string `toml:"listen" comment:"Address of the Prometheus /metrics endpoint; empty disables it."`
}

// LogConfig is the [log] section.
type LogConfig struct {
	Level  string `toml:"level" comment:"debug, info, warn or error."`
	Format string `toml:"format" comment:"text or json."`
}

// DefaultGenesis is the start of epoch 0 of the default network,
// 2026-01-01T00:00:00Z.
const DefaultGenesis int64 = 1767225600

// DefaultConfig returns the defaults `poai init` writes.
func DefaultConfig() Config {
	pc := p2p.DefaultConfig()
	return Config{
		P2P:    P2PConfig{Listen: pc.ListenAddrs, MDNS: true, ConnLow: pc.ConnLow, ConnHigh: pc.ConnHigh, Shards: 1},
		Device: DeviceConfig{Backend: "auto"},
		Challenge: ChallengeConfig{
			Genesis:         DefaultGenesis,
			EpochLength:     Duration(30 * time.Second),
			TargetDuration:  Duration(2 * time.Second),
			Workloads:       []string{"int8", "bf16", "vram"},
			K:               512,
			M:               512,
			BF16K:           128,
			BF16M:           128,
			MaxRows:         1 << 22,
			VerifierShare:   0.01,
			VRAMFill:        challenge.DefaultVRAMSizing().Fill,
			VRAMRounds:      challenge.DefaultVRAMSizing().Rounds,
			VRAMReads:       challenge.DefaultVRAMSizing().ReadsPerBlock,
			VRAMLaneReads:   challenge.DefaultVRAMSizing().LaneReads,
			EffInt8:         challenge.DefaultEfficiency.Int8,
			EffBF16:         challenge.DefaultEfficiency.BF16,
			EffLLMInt8:      challenge.DefaultEfficiency.LLMInt8,
			EffLLMBandwidth: challenge.DefaultEfficiency.LLMBandwidth,
			Slack:           2.5,
			CatalogSlack:    1.5,
			Allowance:       Duration(500 * time.Millisecond),
			CheatFraction:   0.9,
			PassProb:        0.001,
			Verifiers:       3,
			Rate:            1,
			PeerTTLEpochs:   3,
		},
		Scoring: ScoringConfig{Initial: 0.5, Alpha: 0.25, MinWeight: 0.05, Decay: 0.85, RetentionEpochs: 64, RecheckFraction: 0.05},
		API:     APIConfig{Listen: "127.0.0.1:5280"},
		Metrics: MetricsConfig{Listen: "127.0.0.1:9464"},
		Log:     LogConfig{Level: "info", Format: "text"},
	}
}

// Profiles are the configurations `poai init --profile` writes.
var Profiles = map[string]func() Config{
	"default": DefaultConfig,
	// bootstrap: a stable entry point others list under p2p.bootstrap —
	// fixed listen ports, no mDNS, room for many connections.
	"bootstrap": func() Config {
		c := DefaultConfig()
		port := p2p.DefaultPort
		c.P2P.Listen = []string{fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", port), fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", port),
			fmt.Sprintf("/ip6/::/tcp/%d", port), fmt.Sprintf("/ip6/::/udp/%d/quic-v1", port)}
		c.P2P.MDNS = false
		c.P2P.ConnLow, c.P2P.ConnHigh = 512, 2048
		return c
	},
}

// configKeys returns every key of the configuration, as "section.key".
func configKeys() []string {
	var keys []string
	t := reflect.TypeOf(Config{})
	for i := range t.NumField() {
		section := t.Field(i).Tag.Get("toml")
		st := t.Field(i).Type
		for j := range st.NumField() {
			keys = append(keys, section+"."+strings.Split(st.Field(j).Tag.Get("toml"), ",")[0])
		}
	}
	return keys
}

// decodeError rewrites a TOML decoding error so that it names each unknown
// key or bad value with its line and column (and, for an unknown key, the
// closest known key).
func decodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		known := configKeys()
		var errs []error
		for i := range strict.Errors {
			e := &strict.Errors[i]
			row, col := e.Position()
			key := strings.Join(e.Key(), ".")
			msg := fmt.Sprintf("line %d, column %d: unknown key %q", row, col, key)
			if near := closest(key, known); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			errs = append(errs, errors.New(msg))
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		if k := de.Key(); len(k) > 0 {
			return fmt.Errorf("line %d, column %d: key %q: %w", row, col, strings.Join(k, "."), err)
		}
		return fmt.Errorf("line %d, column %d: %w", row, col, err)
	}
	return err
}

// closest returns the candidate nearest to s by edit distance, or "" when
// none is near enough to be a likely typo.
func closest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Validate checks every section and returns all problems, each naming its
// section and key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.P2P.Listen) == 0 {
		bad("[p2p] listen: at least one address is required")
	}
	if _, err := p2p.ParseBootstrap(c.P2P.Bootstrap); err != nil {
		bad("[p2p] bootstrap: %v", err)
	}
	if c.P2P.TraceRemote != "" {
		if _, err := peer.AddrInfoFromString(c.P2P.TraceRemote); err != nil {
			bad("[p2p] trace_remote: %q is not a multiaddr ending in /p2p/<peer ID>: %v", c.P2P.TraceRemote, err)
		}
	}
	if c.P2P.Shards < 0 || c.P2P.Shards > 4096 {
		bad("[p2p] shards: %d is outside 0..4096", c.P2P.Shards)
	}
	if c.P2P.ConnLow < 1 || c.P2P.ConnHigh < c.P2P.ConnLow {
		bad("[p2p] conn_low, conn_high: need 1 <= conn_low <= conn_high, got %d, %d", c.P2P.ConnLow, c.P2P.ConnHigh)
	}
	switch c.Device.Backend {
	case "", "auto", "cpu", "cuda":
	default:
		bad("[device] backend: %q is not one of auto, cuda, cpu", c.Device.Backend)
	}
	if c.Device.GPU < 0 {
		bad("[device] gpu: ordinal %d is negative", c.Device.GPU)
	}
	if c.Device.Int8TOPS < 0 || c.Device.BF16TFLOPS < 0 || c.Device.HashGHps < 0 {
		bad("[device] int8_tops, bf16_tflops, hash_ghps: negative")
	}
	ch := c.Challenge
	if ch.EpochLength.Std() < time.Second {
		bad("[challenge] epoch_length: %v is under 1s", ch.EpochLength.Std())
	}
	if ch.TargetDuration.Std() <= 0 || ch.TargetDuration.Std() >= ch.EpochLength.Std() {
		bad("[challenge] target_duration: %v must be positive and shorter than the epoch", ch.TargetDuration.Std())
	}
	if ch.K <= 0 || ch.K > 1<<16 || ch.M <= 0 || ch.M > 1<<14 {
		bad("[challenge] int8_k, int8_m: %d, %d must be in [1,65536] and [1,16384]", ch.K, ch.M)
	}
	if ch.BF16K <= 0 || ch.BF16K > challenge.MaxBF16K || ch.BF16M <= 0 || ch.BF16M > 1<<14 {
		bad("[challenge] bf16_k, bf16_m: %d, %d must be in [1,%d] and [1,16384]", ch.BF16K, ch.BF16M, challenge.MaxBF16K)
	}
	if len(ch.Workloads) == 0 {
		bad("[challenge] workloads: at least one of int8, bf16, vram, llm")
	}
	for _, w := range ch.Workloads {
		if _, err := ParseWorkload(w); err != nil {
			bad("[challenge] workloads: %v", err)
		}
	}
	if ch.VerifierShare <= 0 || ch.VerifierShare > 1 {
		bad("[challenge] max_verifier_fraction: %v must be in (0,1]", ch.VerifierShare)
	}
	if ch.VRAMFill <= 0 || ch.VRAMFill > 1 || ch.VRAMRounds < 1 || ch.VRAMReads < 1 || ch.VRAMLaneReads < 1 {
		bad("[challenge] vram_fill must be in (0,1] and vram_rounds, vram_reads_per_block, vram_lane_reads at least 1")
	}
	if ch.EffLLMInt8 <= 0 || ch.EffLLMInt8 > 1 || ch.EffLLMBandwidth <= 0 || ch.EffLLMBandwidth > 1 {
		bad("[challenge] efficiency_llm_int8 and efficiency_llm_bandwidth must be in (0, 1], got %g and %g", ch.EffLLMInt8, ch.EffLLMBandwidth)
	}
	if ch.EffInt8 <= 0 || ch.EffInt8 > 1 || ch.EffBF16 <= 0 || ch.EffBF16 > 1 {
		bad("[challenge] efficiency_int8, efficiency_bf16: must be in (0,1]")
	}
	if ch.CatalogSlack != 0 && ch.CatalogSlack < 1 {
		bad("[challenge] catalog_slack: %v is under 1", ch.CatalogSlack)
	}
	if ch.Slack < 1 {
		bad("[challenge] slack: %v is under 1", ch.Slack)
	}
	if ch.Allowance.Std() < 0 {
		bad("[challenge] allowance: negative")
	}
	if ch.CheatFraction <= 0 || ch.CheatFraction >= 1 || ch.PassProb <= 0 || ch.PassProb >= 1 {
		bad("[challenge] cheat_fraction, pass_probability: both must be in (0,1)")
	}
	if ch.Waves < 0 || ch.Waves > challenge.MaxWaves {
		bad("[challenge] waves: %d is outside [0, %d]", ch.Waves, challenge.MaxWaves)
	}
	if !(ch.Rate > 0 && ch.Rate <= 1) {
		bad("[challenge] rate: %v is outside (0, 1]", ch.Rate)
	}
	if ch.Verifiers < 1 {
		bad("[challenge] verifiers: %d is under 1", ch.Verifiers)
	}
	if ch.MaxRows < 1 {
		bad("[challenge] max_rows: %d is under 1", ch.MaxRows)
	}
	if ch.PeerTTLEpochs < 1 {
		bad("[challenge] peer_ttl_epochs: %d is under 1", ch.PeerTTLEpochs)
	}
	s := c.Scoring
	if s.Decay <= 0 || s.Decay > 1 {
		bad("[scoring] decay: %v is not in (0,1]", s.Decay)
	}
	if s.RetentionEpochs < 2 {
		bad("[scoring] retention_epochs: %d is under 2", s.RetentionEpochs)
	}
	if s.RecheckFraction < 0 || s.RecheckFraction > 1 {
		bad("[scoring] recheck_fraction: %v is not in [0,1]", s.RecheckFraction)
	}
	for _, id := range s.PreTrusted {
		if _, err := peer.Decode(id); err != nil {
			bad("[scoring] pretrusted: %q is not a peer ID: %v", id, err)
		}
	}
	if s.Initial < 0 || s.Initial > 1 || s.Alpha <= 0 || s.Alpha > 1 || s.MinWeight < 0 || s.MinWeight > 1 {
		bad("[scoring] initial, alpha, min_weight: out of range")
	}
	if c.API.Listen != "" && c.API.Token == "" && !Loopback(c.API.Listen) {
		bad("[api] token: required when the API listens on %s, beyond loopback", c.API.Listen)
	}
	if c.Metrics.Listen != "" && c.API.Token == "" && !Loopback(c.Metrics.Listen) {
		bad("[api] token: required when /metrics listens on %s, beyond loopback (scrape it with the token as a bearer token)", c.Metrics.Listen)
	}
	if t := c.API.Token; t != "" && len(t) < MinTokenBytes {
		bad("[api] token: %d characters, at least %d needed (generate one: head -c 24 /dev/urandom | base64)", len(t), MinTokenBytes)
	}
	for _, h := range c.API.Hosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			bad("[api] hosts: %q is not a host name", h)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("[log] level: %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("[log] format: %q is not text or json", c.Log.Format)
	}
	return errors.Join(errs...)
}

// Loopback reports whether a host:port address binds only to loopback.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadConfig reads a TOML file over the defaults (ReadConfig) and
// validates it.
func LoadConfig(path string) (Config, error) {
	c, err := ReadConfig(path)
	if err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ReadConfig reads a TOML file over the defaults without validating it,
// for a caller that applies the environment and flags first (POAI_API_TOKEN
// may supply the token a non-loopback api.listen needs) and validates the
// result. Unknown keys are an error, so a typo never silently falls back
// to a default.
func ReadConfig(path string) (Config, error) {
	c := DefaultConfig()
	f, err := os.Open(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := toml.NewDecoder(f).DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, decodeError(err))
	}
	return c, nil
}

// WriteConfig writes c as commented TOML to path, refusing to overwrite an
// existing file. The file is 0600: it may hold the API token.
func WriteConfig(path string, c Config) error {
	b, err := toml.Marshal(c)
	if err != nil {
		return err
	}
	header := "# poai node configuration. Flags given to `poai run` override these values.\n\n"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := f.Write(append([]byte(header), b...)); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	return f.Close()
}
