package devnet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"
)

// SimConfig describes a simulation: many real nodes in one process over
// libp2p's in-memory network (mocknet), split into shards. Everything but
// the transport is the code a real node runs: gossipsub with peer
// scoring, the validators, the CPU prover, the verifiers, EigenTrust and
// one Badger store per node.
type SimConfig struct {
	// Peers is the total number of nodes, adversaries included.
	Peers int
	// Adversaries maps each adversary role to how many nodes play it.
	Adversaries map[node.Role]int
	// Epochs is how many epochs to run after genesis.
	Epochs int
	// ShardSize is the number of peers per shard the network aims for;
	// shards = ceil(Peers / ShardSize). 0 means 32.
	ShardSize int
	// Degree is how many peers of its shard each node connects to (0: 8).
	Degree int
	// Latency is the one-way delay of every link.
	Latency time.Duration
	// Target is how long a challenge should take an honest node (0: 80
	// ms; with Slack 3 it must exceed Allowance / 3).
	Target time.Duration
	// EpochLength of 0 is picked by SimEpochLength.
	EpochLength time.Duration
	// Rate is the fraction of peers challenged per epoch (0: 1).
	Rate float64
	// Allowance is the fixed part of every deadline (0: 150 ms).
	Allowance time.Duration
	// Slack multiplies anticipated times into deadlines (0: 3).
	Slack float64
	// ClaimFraction is Config.ClaimFraction (0: 1, every node claims
	// the whole measured throughput). The CPU is measured on ten runs of
	// each workload, not three: on a core whose speed changes from moment
	// to moment a few runs read anything between its two speeds, and every
	// claim, so the network's whole load, with them (1,000-peer runs
	// measured 0.0014 to 0.0030 int8 TOPS on one machine; ten runs still
	// read 0.0015 once).
	ClaimFraction float64
	// Workloads challenges rotate through (empty: int8 only; on small
	// CPU claims bf16 costs several times more per challenge and the VRAM
	// proof's verifiers recompute about as much as its prover).
	Workloads []string
	// Heartbeat is gossipsub's heartbeat interval (0: 1 s, gossipsub's
	// default). Every router runs one per topic: a thousand of them in one
	// process spend a core or more on heartbeats alone.
	Heartbeat time.Duration
	// Loss is the fraction of incoming messages each node loses at
	// random (WithLoss); 0 loses none.
	Loss float64
	// K and M are the int8 inner and column dimensions (0: 128 each, a
	// quarter of the default config's, so openings stay small when every
	// peer of a shard receives every opening).
	K, M int
	// DataDir holds the stores; empty means a temporary folder, in
	// /dev/shm when it has room for 2 MiB per peer (memoryDir).
	DataDir string
	// PreTrusted is Config.PreTrusted: how many honest peers of
	// each shard every node pre-trusts, as bootstrap operators.
	PreTrusted int
	// Devices and Waves are Config's: DevicesEmulated gives every
	// peer an emulated device (SimReport.Report.Emulator counts the
	// overruns), Waves the wave schedule.
	Devices DeviceMode
	Waves   int
	// SlotsFrom is the epoch from which SimReport.Slots also counts the
	// slots apart (0: 3), once a flood's bootstrap is over.
	SlotsFrom int
	// Log receives every node's logs.
	Log *slog.Logger
	// Progress, when set, receives each epoch's figures as they come.
	Progress func(SimEpoch)
	// CPUProfile, when set, receives a Go CPU profile of the epochs (the
	// set-up excluded: key generation and store creation would dominate
	// it).
	CPUProfile io.Writer
}

// RoleScores summarizes the integrity scores of one role's peers in one
// epoch: each peer's score is the mean over the honest peers of its shard.
type RoleScores struct {
	Peers int     `json:"peers"`
	Mean  float64 `json:"mean"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	// Graylisted counts peers whose application score is below the
	// graylist threshold in the view of most honest peers of their shard.
	Graylisted int `json:"graylisted"`
	// ChallengerSlots and VerifierSlots are the slots the role's peers
	// held in the epoch (PeerReport's, as the first honest peer of each
	// peer's shard counted them).
	ChallengerSlots int `json:"challenger_slots"`
	VerifierSlots   int `json:"verifier_slots"`
}

// SlotCount is the slots a role's peers held: challenger and verifier
// slots over the whole run, and from SimReport.SlotsFrom on.
type SlotCount struct {
	Peers          int `json:"peers"`
	Challenger     int `json:"challenger"`
	Verifier       int `json:"verifier"`
	ChallengerFrom int `json:"challenger_from"`
	VerifierFrom   int `json:"verifier_from"`
}

// SimEpoch is what the simulation saw at the end of one epoch.
type SimEpoch struct {
	Epoch  int                       `json:"epoch"`
	ByRole map[node.Role]*RoleScores `json:"by_role"`
	// Attestations is how many attestations honest nodes folded in during
	// the epoch; the delays are challenge issue to attestation receipt.
	Attestations int     `json:"attestations"`
	DelayP50MS   float64 `json:"delay_p50_ms"`
	DelayP99MS   float64 `json:"delay_p99_ms"`
	HeapBytes    uint64  `json:"heap_bytes"`
	Goroutines   int     `json:"goroutines"`
}

// Detection is when one adversary class was caught: the epochs from which
// each of its peers stayed below the graylist threshold (Report's
// caught_epoch), over the peers that were caught.
type Detection struct {
	Peers  int   `json:"peers"`
	Caught int   `json:"caught"`
	First  int64 `json:"first_epoch"`
	Median int64 `json:"median_epoch"`
	Last   int64 `json:"last_epoch"`
}

// SimReport is the simulation's result.
type SimReport struct {
	Peers       int     `json:"peers"`
	Shards      int     `json:"shards"`
	Epochs      int     `json:"epochs"`
	EpochLength string  `json:"epoch_length"`
	Rate        float64 `json:"rate"`
	LatencyMS   float64 `json:"link_latency_ms"`
	Loss        float64 `json:"loss"`
	// Report is the devnet report of the last epoch (shard-aware).
	Report     Report                  `json:"report"`
	Trajectory []SimEpoch              `json:"trajectory"`
	Detection  map[node.Role]Detection `json:"detection"`
	// Slots is who held the judge slots, by role, and ShardSlots the
	// same per shard: a shard with fewer than k + 2 proven peers
	// (Node.judges) gives unproven identities slots to the end.
	SlotsFrom  int                        `json:"slots_from"`
	Slots      map[node.Role]*SlotCount   `json:"slots"`
	ShardSlots []map[node.Role]*SlotCount `json:"shard_slots"`
	// Challenge-to-attestation delay over the whole run, in ms.
	DelayP50MS float64 `json:"delay_p50_ms"`
	DelayP90MS float64 `json:"delay_p90_ms"`
	DelayP99MS float64 `json:"delay_p99_ms"`
	// MeshDegree counts nodes by their mesh degree on the attestation
	// topic at the end: MeshDegree[d] nodes have d mesh peers.
	MeshDegree map[int]int `json:"mesh_degree"`
	// Memory: Go heap in use after start-up and at the end, divided by
	// the number of peers, and the process's peak resident set.
	HeapPerPeerBytes uint64  `json:"heap_per_peer_bytes"`
	HeapEndBytes     uint64  `json:"heap_end_bytes"`
	PeakRSSBytes     uint64  `json:"peak_rss_bytes"`
	SetupS           float64 `json:"setup_s"`
	RunS             float64 `json:"run_s"`
	// ReportS is how long gathering the report took after the epochs,
	// StopS how long closing every node took after that.
	ReportS float64 `json:"report_s"`
	StopS   float64 `json:"stop_s"`
	CPUS    float64 `json:"cpu_s"`
	// RunCPUS is the CPU time of the epochs alone (CPUS less the set-up).
	RunCPUS float64 `json:"run_cpu_s"`
	// Messages counts, over every node, the messages its validators saw
	// by topic and result ("/poai/1/claims accept"), and the direct copies
	// it sent by topic and result ("direct challenges sent": accepted by
	// the target before any gossip copy; "rejected": the gossip copy came
	// first; "failed": no stream).
	Messages map[string]float64 `json:"messages"`
	// Stages are the honest nodes' own histograms merged, in ms:
	// prove_wait (validator to proof start on the target), prove (proof
	// and commitment), verify (one opening) and latency (challenge to
	// commitment on the verifiers' clocks, from every attestation honest
	// nodes received, adversaries' included, once per receiver).
	Stages map[string]Quantiles `json:"stages"`
	// Verdicts counts the attestations honest verifiers published, by
	// verdict, and, under their own keys, the timing verdicts they
	// withheld and the retries they skipped because their process was
	// overloaded (Node.overloaded), the follow-up challenges they
	// scheduled (challenge.NeedsFollowUp) and the check-digest audits they ran
	// (tryAudit).
	Verdicts map[string]float64 `json:"verdicts"`
	// AllCaught: every adversary class fully caught; HonestGraylisted:
	// honest false positives at the end.
	AllCaught        bool `json:"all_caught"`
	HonestGraylisted int  `json:"honest_graylisted"`
}

// simStages names the histograms SimReport.Stages merges; simCounterKeys
// the counters SimReport.Verdicts adds under their own keys.
var (
	simStages = map[string]string{"poai_prove_wait_seconds": "prove_wait", "poai_prove_seconds": "prove",
		"poai_verify_seconds": "verify", "poai_challenge_latency_seconds": "latency"}
	simCounterKeys = map[string]string{"poai_verdicts_withheld_total": "withheld (overloaded)",
		"poai_challenges_retry_skipped_total": "retries skipped (overloaded)", "poai_challenges_follow_up_total": "follow-up challenges",
		"poai_audits_total": "check-digest audits"}
)

// SimEpochLength returns the epoch the sim picks when none is given: long
// enough for the network's challenges to keep the cores about 75 % busy,
// at least 4 s and at least shard × 3 × target. A challenge costs about
// 1.25·target of CPU (the proof and the verifiers' recomputation) plus
// 12.5 ms per peer of the shard (every shard member validates and
// checks the signatures of its challenge, commitment, opening, reveal and
// attestations), measured at k = m = 128: 150 ms at target 40 ms in shards
// of 8 (207 s of CPU over about 1,400 challenges, idle cost included), 450
// ms at 80 ms in shards of 32. 25 s for 1,000 peers at rate 0.25 on two
// cores.
func SimEpochLength(peers, shardSize int, rate float64, target time.Duration, cores int) time.Duration {
	perChallenge := target*5/4 + time.Duration(min(shardSize, peers))*12500*time.Microsecond
	load := time.Duration(float64(peers) * rate * float64(perChallenge) / float64(max(cores, 1)) / 0.75)
	return max(4*time.Second, time.Duration(min(shardSize, peers))*3*target, load).Round(100 * time.Millisecond)
}

// RunSim runs a simulation to the end of cfg.Epochs and reports it.
func RunSim(ctx context.Context, cfg SimConfig) (SimReport, error) {
	if cfg.Peers < 3 || cfg.Epochs < 1 {
		return SimReport{}, fmt.Errorf("sim: need at least 3 peers and 1 epoch, got %d and %d", cfg.Peers, cfg.Epochs)
	}
	if !(cfg.Loss >= 0 && cfg.Loss <= 1) {
		return SimReport{}, fmt.Errorf("sim: loss %v is outside [0, 1]", cfg.Loss)
	}
	if cfg.ShardSize <= 0 {
		cfg.ShardSize = 32
	}
	if cfg.Target <= 0 {
		cfg.Target = 80 * time.Millisecond
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 1
	}
	if cfg.Allowance <= 0 {
		cfg.Allowance = 150 * time.Millisecond
	}
	if cfg.Slack <= 0 {
		cfg.Slack = 3
	}
	if len(cfg.Workloads) == 0 {
		cfg.Workloads = []string{"int8"}
	}
	if cfg.K <= 0 || cfg.M <= 0 {
		cfg.K, cfg.M = 128, 128
	}
	if cfg.SlotsFrom <= 0 {
		cfg.SlotsFrom = 3
	}
	shards := (cfg.Peers + cfg.ShardSize - 1) / cfg.ShardSize
	if cfg.EpochLength <= 0 {
		cfg.EpochLength = SimEpochLength(cfg.Peers, cfg.ShardSize, cfg.Rate, cfg.Target, runtime.GOMAXPROCS(0))
	}
	if cfg.DataDir == "" {
		if shm := memoryDir(uint64(cfg.Peers) << 21); shm != "" {
			dir, err := os.MkdirTemp(shm, "poai-sim-")
			if err != nil {
				return SimReport{}, fmt.Errorf("sim: %w", err)
			}
			defer os.RemoveAll(dir)
			cfg.DataDir = dir
		}
	}
	cpu0 := cpuTime()
	t0 := time.Now()
	d, err := Start(ctx, Config{
		Nodes: cfg.Peers, Adversaries: cfg.Adversaries, DataDir: cfg.DataDir, Target: cfg.Target,
		EpochLength: cfg.EpochLength, Slack: cfg.Slack, Warmup: 5*time.Second + time.Duration(cfg.Peers)*60*time.Millisecond,
		GPU: "off", Log: cfg.Log, Mocknet: true, Degree: cfg.Degree, Latency: cfg.Latency, Shards: shards,
		Allowance: cfg.Allowance, ChallengeRate: cfg.Rate, Workloads: cfg.Workloads, K: cfg.K, M: cfg.M, Heartbeat: cfg.Heartbeat,
		Loss: cfg.Loss, ClaimFraction: cfg.ClaimFraction, MeasureReps: 10, PreTrusted: cfg.PreTrusted,
		Devices: cfg.Devices, Waves: cfg.Waves,
	})
	if err != nil {
		return SimReport{}, err
	}
	closed := false
	defer func() {
		if !closed {
			d.Close()
		}
	}()
	r := SimReport{Peers: cfg.Peers, Shards: shards, Epochs: cfg.Epochs, EpochLength: cfg.EpochLength.String(),
		Rate: cfg.Rate, LatencyMS: float64(cfg.Latency) / 1e6, Loss: cfg.Loss, Detection: map[node.Role]Detection{}, MeshDegree: map[int]int{}}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	r.HeapPerPeerBytes = ms.HeapInuse / uint64(cfg.Peers)
	r.SetupS = time.Since(t0).Seconds()
	t1, cpu1 := time.Now(), cpuTime()
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return r, fmt.Errorf("sim: CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var all []time.Duration
	for e := 1; e <= cfg.Epochs; e++ {
		// Sample just after epoch e starts: its trust round has folded in
		// epoch e−1.
		at := d.Clock.Add(time.Duration(e)*d.EpochLength + d.EpochLength/20)
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(time.Until(at)):
		}
		se := d.sample(e - 1)
		for _, n := range d.Nodes {
			ds := n.TakeAttestationDelays()
			if !n.Role().Adversary() {
				se.Attestations += len(ds)
				all = append(all, ds...)
			}
		}
		se.DelayP50MS = percentileMS(all[len(all)-se.Attestations:], 0.5)
		se.DelayP99MS = percentileMS(all[len(all)-se.Attestations:], 0.99)
		runtime.ReadMemStats(&ms)
		se.HeapBytes, se.Goroutines = ms.HeapInuse, runtime.NumGoroutine()
		r.Trajectory = append(r.Trajectory, se)
		if cfg.Progress != nil {
			cfg.Progress(se)
		}
	}
	r.RunS = time.Since(t1).Seconds()
	tReport := time.Now()
	r.RunCPUS = (cpuTime() - cpu1).Seconds()
	r.DelayP50MS, r.DelayP90MS, r.DelayP99MS = percentileMS(all, 0.5), percentileMS(all, 0.9), percentileMS(all, 0.99)
	for _, n := range d.Nodes {
		r.MeshDegree[n.Observer().MeshPeers(p2p.TopicAttestation)]++
	}
	r.Messages, r.Verdicts = map[string]float64{}, map[string]float64{}
	stages := map[string]*histogram{}
	for _, n := range d.Nodes {
		mfs, err := n.Registry().Gather()
		if err != nil {
			continue
		}
		for _, mf := range mfs {
			prefix := ""
			switch name := mf.GetName(); name {
			case "poai_messages_total":
			case "poai_direct_messages_total":
				prefix = "direct "
			case "poai_attestations_published_total":
				if !n.Role().Adversary() {
					for _, m := range mf.GetMetric() {
						for _, l := range m.GetLabel() {
							r.Verdicts[l.GetValue()] += m.GetCounter().GetValue()
						}
					}
				}
				continue
			case "poai_verdicts_withheld_total", "poai_challenges_retry_skipped_total", "poai_challenges_follow_up_total", "poai_audits_total":
				if !n.Role().Adversary() {
					for _, m := range mf.GetMetric() {
						r.Verdicts[simCounterKeys[name]] += m.GetCounter().GetValue()
					}
				}
				continue
			case "poai_prove_wait_seconds", "poai_prove_seconds", "poai_verify_seconds", "poai_challenge_latency_seconds":
				if !n.Role().Adversary() {
					stage := simStages[name]
					if stages[stage] == nil {
						stages[stage] = &histogram{}
					}
					for _, m := range mf.GetMetric() {
						stages[stage].add(m.GetHistogram())
					}
				}
				continue
			default:
				continue
			}
			for _, m := range mf.GetMetric() {
				var topic, result string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "topic":
						topic = l.GetValue()
					case "result":
						result = l.GetValue()
					}
				}
				r.Messages[prefix+topic+" "+result] += m.GetCounter().GetValue()
			}
		}
	}
	r.Stages = map[string]Quantiles{}
	for k, h := range stages {
		r.Stages[k] = h.quantiles()
	}
	if r.Report, err = d.Report(); err != nil {
		return r, err
	}
	r.SlotsFrom, r.Slots, r.ShardSlots = cfg.SlotsFrom, map[node.Role]*SlotCount{}, make([]map[node.Role]*SlotCount, shards)
	for _, p := range d.Nodes {
		o := d.observerOf(p)
		if o == nil {
			continue
		}
		sh, _ := p.Shard()
		if r.ShardSlots[sh] == nil {
			r.ShardSlots[sh] = map[node.Role]*SlotCount{}
		}
		c, v := o.Observer().Slots(p.ID(), 0, math.MaxUint64)
		cf, vf := o.Observer().Slots(p.ID(), uint64(cfg.SlotsFrom), math.MaxUint64)
		for _, m := range []map[node.Role]*SlotCount{r.Slots, r.ShardSlots[sh]} {
			sc := m[p.Role()]
			if sc == nil {
				sc = &SlotCount{}
				m[p.Role()] = sc
			}
			sc.Peers++
			sc.Challenger, sc.Verifier, sc.ChallengerFrom, sc.VerifierFrom = sc.Challenger+c, sc.Verifier+v, sc.ChallengerFrom+cf, sc.VerifierFrom+vf
		}
	}
	caught := map[node.Role][]int64{}
	for _, p := range r.Report.Peers {
		if !p.Role.Adversary() {
			continue
		}
		det := r.Detection[p.Role]
		det.Peers++
		if p.CaughtEpoch >= 0 && p.Graylisted {
			det.Caught++
			caught[p.Role] = append(caught[p.Role], p.CaughtEpoch)
		}
		r.Detection[p.Role] = det
	}
	r.AllCaught = true
	for role, det := range r.Detection {
		if es := caught[role]; len(es) > 0 {
			slices.Sort(es)
			det.First, det.Median, det.Last = es[0], es[len(es)/2], es[len(es)-1]
		} else {
			det.First, det.Median, det.Last = -1, -1, -1
		}
		r.Detection[role] = det
		if det.Caught < det.Peers {
			r.AllCaught = false
		}
	}
	r.HonestGraylisted = r.Report.HonestGraylisted
	runtime.ReadMemStats(&ms)
	r.HeapEndBytes = ms.HeapInuse
	r.PeakRSSBytes = peakRSS()
	r.ReportS = time.Since(tReport).Seconds()
	stop := time.Now()
	closed = true
	if err := d.Close(); err != nil && cfg.Log != nil {
		cfg.Log.Warn("sim: closing the nodes", "err", err)
	}
	r.StopS = time.Since(stop).Seconds()
	r.CPUS = (cpuTime() - cpu0).Seconds()
	return r, nil
}

// sample returns each role's scores as the honest peers of its shard see
// them after epoch e.
func (d *Devnet) sample(e int) SimEpoch {
	se := SimEpoch{Epoch: e, ByRole: map[node.Role]*RoleScores{}}
	for _, p := range d.Nodes {
		var sum float64
		var views, gray int
		for _, o := range d.Nodes {
			if o == p || o.Role().Adversary() || !sameShard(o, p) {
				continue
			}
			sum += o.Book().Score(p.ID().String())
			if o.Observer().AppScore(p.ID()) < p2p.GraylistThreshold {
				gray++
			}
			views++
		}
		if views == 0 {
			continue
		}
		s := sum / float64(views)
		rs := se.ByRole[p.Role()]
		if rs == nil {
			rs = &RoleScores{Min: math.Inf(1), Max: math.Inf(-1)}
			se.ByRole[p.Role()] = rs
		}
		rs.Mean += s
		rs.Peers++
		rs.Min, rs.Max = math.Min(rs.Min, s), math.Max(rs.Max, s)
		if 2*gray > views {
			rs.Graylisted++
		}
		c, v := d.observerOf(p).Observer().Slots(p.ID(), uint64(e), uint64(e)+1)
		rs.ChallengerSlots += c
		rs.VerifierSlots += v
	}
	for _, rs := range se.ByRole {
		rs.Mean /= float64(rs.Peers)
	}
	return se
}

// observerOf returns the first honest node of p's shard other than p (the
// devnet report's observer), or nil.
func (d *Devnet) observerOf(p *node.Node) *node.Node {
	for _, o := range d.Nodes {
		if o != p && !o.Role().Adversary() && sameShard(o, p) {
			return o
		}
	}
	return nil
}
