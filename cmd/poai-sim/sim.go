package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/internal/flagcheck"
	"github.com/poai-network/poai/internal/logging"
	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
)

func simCmd() *cobra.Command {
	var (
		cfg         devnet.SimConfig
		adversaries string
		outDir      string
		jsonOut     bool
		logLevel    string
		cpuProfile  string
		memProfile  string
		gogc        int
	)
	cmd := &cobra.Command{
		Use:   "poai-sim",
		Short: "Simulate a large network of real nodes over libp2p's in-memory network, with plots",
		Long: `sim runs --peers real poai nodes in this process over libp2p's in-memory
network (mocknet): the same gossipsub with peer scoring, validators, CPU
prover, verifiers, EigenTrust and Badger store (one per node, compact) as
'poai run', with only the transport replaced. Links delay every write by
--latency; each node loses --loss of the messages it receives.

The network is split into shards of about --shard-size peers ([p2p]
shards): a peer challenges, proves, verifies and attests only inside its
shard, so each peer handles O(shard size) messages per epoch rather than
O(peers). Each peer is challenged in an epoch with probability about
--rate, and two of its challenges are at most 2/rate epochs apart.
The defaults are set for 1,000 peers on two cores; --epoch 0 sizes the
epoch from the peers, shard, rate, target and cores.

Adversary roles are those of 'poai devnet' (see 'poai devnet --help').
Every epoch a line of figures goes to stderr, with the challenger/verifier
slots each role held. At the end the slots by role (overall and from
--slots-from on, and the shards where adversaries still held some) and
--out receives sim.json and five plots: scores.png (mean integrity score by
role per epoch), detection.png (epoch each adversary class was caught),
delay.png (challenge-to-attestation delay p50/p99 per epoch), mesh.png
(mesh degree distribution on the attestation topic) and slots.png (each
role's share of the judge slots per epoch). --json also prints the
report on stdout.`,
		Example: `  poai-sim --peers 200 --epochs 10
  # under 10 minutes on 2 cores with the defaults (docs/sim.md):
  poai-sim --peers 1000 --epochs 20 --out /tmp/sim \
    --adversaries slow=20,lazy=10,replay=10,relay=10,forged-nvml=10,lazy-verifier=20,colluders=30,sybil=40,onoff=10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var fc flagcheck.Check
			fc.AtLeast("peers", cfg.Peers, 3)
			fc.AtLeast("epochs", cfg.Epochs, 1)
			fc.AtLeast("shard-size", cfg.ShardSize, 1)
			fc.AtLeast("degree", cfg.Degree, 1)
			fc.OneOf("devices", string(cfg.Devices), string(devnet.DevicesHost), string(devnet.DevicesEmulated))
			fc.Positive("target", cfg.Target)
			fc.NonNegative("epoch", cfg.EpochLength)
			fc.NonNegative("latency", cfg.Latency)
			fc.Positive("allowance", cfg.Allowance)
			fc.NonNegative("heartbeat", cfg.Heartbeat)
			if !(cfg.Rate > 0 && cfg.Rate <= 1) {
				fc.Bad("rate", "%v is outside (0, 1]", cfg.Rate)
			}
			if !(cfg.Loss >= 0 && cfg.Loss <= 1) {
				fc.Bad("loss", "%v is outside [0, 1]", cfg.Loss)
			}
			if !(cfg.Slack >= 1) {
				fc.Bad("slack", "%v is under 1", cfg.Slack)
			}
			if !(cfg.ClaimFraction >= 0 && cfg.ClaimFraction <= 1) {
				fc.Bad("claim-fraction", "%v is outside [0, 1]", cfg.ClaimFraction)
			}
			fc.AtLeast("k", cfg.K, 1)
			fc.AtLeast("m", cfg.M, 1)
			fc.Between("waves", cfg.Waves, 0, challenge.MaxWaves)
			fc.AtLeast("pretrusted", cfg.PreTrusted, 0)
			fc.AtLeast("slots-from", cfg.SlotsFrom, 0)
			if err := fc.Err(); err != nil {
				return err
			}
			adv, err := devnet.ParseAdversaries(adversaries)
			if err != nil {
				return err
			}
			if cfg.Log, err = logging.New(logLevel, "text"); err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			if gc := tuneGC(gogc); gc != "" {
				fmt.Fprintf(stderr, "sim: %s\n", gc)
			}
			fmt.Fprintf(stderr, "sim: starting %d nodes on mocknet (shards of ~%d, degree %d, latency %v, loss %g)...\n", cfg.Peers, cfg.ShardSize, cfg.Degree, cfg.Latency, cfg.Loss)
			cfg.Adversaries = adv
			cfg.Progress = func(e devnet.SimEpoch) {
				line := fmt.Sprintf("epoch %3d  attestations %6d  delay p50 %6.0f ms p99 %6.0f ms  heap %5d MiB  goroutines %6d ", e.Epoch,
					e.Attestations, e.DelayP50MS, e.DelayP99MS, e.HeapBytes>>20, e.Goroutines)
				for _, r := range roleOrder(e.ByRole) {
					s := e.ByRole[r]
					line += fmt.Sprintf(" %s %.2f(%d/%d gray, slots %d/%d)", r, s.Mean, s.Graylisted, s.Peers, s.ChallengerSlots, s.VerifierSlots)
				}
				fmt.Fprintln(stderr, line)
				if memProfile != "" && e.Epoch == cfg.Epochs-1 {
					if f, err := os.Create(memProfile); err == nil {
						pprof.WriteHeapProfile(f)
						f.Close()
					}
				}
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.CPUProfile = f
			}
			r, err := devnet.RunSim(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "sim: %d peers in %d shards, %d epochs of %s: set-up %.0f s, run %.0f s, report %.0f s, stop %.0f s, CPU %.0f s (%.0f s in the epochs); heap %.0f KiB per peer, peak RSS %d MiB\n",
				r.Peers, r.Shards, r.Epochs, r.EpochLength, r.SetupS, r.RunS, r.ReportS, r.StopS, r.CPUS, r.RunCPUS, float64(r.HeapPerPeerBytes)/1024, r.PeakRSSBytes>>20)
			fmt.Fprintf(stderr, "sim: challenge-to-attestation delay p50 %.0f ms, p90 %.0f ms, p99 %.0f ms\n", r.DelayP50MS, r.DelayP90MS, r.DelayP99MS)
			for _, role := range roleOrder(r.Detection) {
				d := r.Detection[role]
				fmt.Fprintf(stderr, "sim: %-14s caught %d/%d, epochs first %d median %d last %d\n", role, d.Caught, d.Peers, d.First, d.Median, d.Last)
			}
			printSlots(stderr, r)
			keys := slices.Sorted(maps.Keys(r.Messages))
			for _, k := range keys {
				fmt.Fprintf(stderr, "sim: messages %-40s %.0f (%.1f per peer per epoch)\n", k, r.Messages[k], r.Messages[k]/float64(r.Peers*r.Epochs))
			}
			for _, k := range slices.Sorted(maps.Keys(r.Stages)) {
				q := r.Stages[k]
				fmt.Fprintf(stderr, "sim: honest %-10s p50 %7.1f ms  p90 %7.1f ms  p99 %7.1f ms  (%.0f)\n", k, q.P50MS, q.P90MS, q.P99MS, q.Count)
			}
			for _, k := range slices.Sorted(maps.Keys(r.Verdicts)) {
				fmt.Fprintf(stderr, "sim: honest verifiers attested %-14s %.0f\n", k, r.Verdicts[k])
			}
			fmt.Fprintf(stderr, "sim: all caught %v, honest graylisted %d, unobserved %d\n", r.AllCaught, r.HonestGraylisted, r.Report.Unobserved)
			if e := r.Report.Emulator; e != nil {
				fmt.Fprintf(stderr, "sim: emulated devices ran %d workloads, %d overran (%.1f%%, at most %.0f%%)\n", e.Workloads, e.Overruns, 100*e.Share, 100*devnet.MaxOverrunShare)
			}
			if outDir != "" {
				if err := writeSimOutputs(outDir, r); err != nil {
					return err
				}
				fmt.Fprintf(stderr, "sim: wrote %s\n", outDir)
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			if e := r.Report.Emulator; e != nil && e.Overloaded {
				return fmt.Errorf("sim: test bed overloaded: %d of %d emulated workloads finished on this host after their device would have, so the scores measure the host, not the peers", e.Overruns, e.Workloads)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Peers, "peers", 200, "number of nodes, adversaries included")
	f.IntVar(&cfg.Epochs, "epochs", 10, "epochs to run after genesis")
	f.StringVar(&adversaries, "adversaries", "", "adversary roles and counts, e.g. slow=2,lazy=1 (roles of 'poai devnet')")
	f.IntVar(&cfg.ShardSize, "shard-size", 8, "peers per shard the network aims for")
	f.IntVar(&cfg.Degree, "degree", 8, "connections each node opens inside its shard")
	f.DurationVar(&cfg.Latency, "latency", 5*time.Millisecond, "one-way latency of every link")
	f.DurationVar(&cfg.Target, "target", 40*time.Millisecond, "how long a challenge should take an honest node")
	f.DurationVar(&cfg.EpochLength, "epoch", 0, "epoch length (0: sized from peers, rate, target and cores)")
	f.Float64Var(&cfg.Rate, "rate", 0.25, "fraction of peers challenged per epoch (below 1, two challenges of a peer are at most ⌈2/rate⌉ epochs apart)")
	f.DurationVar(&cfg.Allowance, "allowance", 100*time.Millisecond, "fixed part of every deadline, for gossip and scheduling")
	f.Float64Var(&cfg.ClaimFraction, "claim-fraction", 0.5, "share of the measured single-core CPU throughput each node claims, the rest kept as headroom (a thousand nodes share the cores); a slow adversary claims 8x the whole")
	f.StringSliceVar(&cfg.Workloads, "workloads", []string{"int8"}, "workloads challenges rotate through: int8, bf16, vram, llm")
	f.Float64Var(&cfg.Loss, "loss", 0, "fraction of incoming messages each node loses at random, unread and not forwarded (mocknet itself loses nothing)")
	f.DurationVar(&cfg.Heartbeat, "heartbeat", 3*time.Second, "gossipsub heartbeat interval (mesh maintenance and gossip); each of the nodes' routers runs one per topic")
	f.IntVar(&cfg.K, "k", 128, "int8 inner dimension of challenges")
	f.IntVar(&cfg.M, "m", 128, "int8 column dimension of challenges (opened rows are m int32s)")
	f.Float64Var(&cfg.Slack, "slack", 3, "deadline = anticipated time x slack + allowance; with --waves, one device behind two identities misses when slack + allowance/target < 2")
	f.StringVar((*string)(&cfg.Devices), "devices", "host", "\"host\": every peer proves on this machine's CPU; \"emulated\": every peer on an emulated device of its own (poai devnet --help), overruns reported")
	f.IntVar(&cfg.Waves, "waves", 0, "0: challenges spread over the epoch; N (1-4): every challenge at one of N instants per epoch ([challenge] waves)")
	f.IntVar(&cfg.PreTrusted, "pretrusted", 0, "honest peers of each shard that every node pre-trusts ([scoring] pretrusted), as bootstrap operators: proven judges from genesis")
	f.IntVar(&cfg.SlotsFrom, "slots-from", 3, "the report also counts the judge slots held from this epoch on")
	f.StringVar(&cfg.DataDir, "data", "", "folder for the nodes' stores (default: a temporary one, removed at the end)")
	f.StringVar(&outDir, "out", "", "write sim.json and the PNG plots to this folder")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON on stdout")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of the epochs (set-up excluded) to this file")
	f.StringVar(&memProfile, "memprofile", "", "write a Go heap profile taken at the last epoch to this file")
	f.IntVar(&gogc, "gogc", 300, "garbage collector target percentage of this process (0 or less: Go's default; the GOGC variable, when set, wins); the memory limit is 70% of physical memory or of the container's limit unless GOMEMLIMIT is set")
	f.StringVar(&logLevel, "log-level", "error", "nodes' log level: debug, info, warn or error")
	return cmd
}

// tuneGC sets the garbage collector for a simulation: percent (GOGC),
// unless the GOGC variable is set or percent ≤ 0, and a soft memory limit
// of 70% of physicalMemory, unless GOMEMLIMIT is set. A thousand nodes keep a few
// GiB live (mostly Badger memtables), and at Go's default GOGC of 100 the
// collector marked them every 25 s for 4–6 s, a quarter of the cores and
// assists from every allocating goroutine: the proofs running then took
// several times their anticipated time. A larger percentage collects less
// often; the limit keeps the heap inside the machine. It returns what it
// set, for the log.
func tuneGC(percent int) string {
	var out []string
	if os.Getenv("GOGC") == "" && percent > 0 {
		debug.SetGCPercent(percent)
		out = append(out, fmt.Sprintf("GOGC %d", percent))
	}
	if total := physicalMemory(); os.Getenv("GOMEMLIMIT") == "" && total > 0 {
		limit := int64(float64(total) * 0.7)
		debug.SetMemoryLimit(limit)
		out = append(out, fmt.Sprintf("memory limit %.1f GiB", float64(limit)/(1<<30)))
	}
	return strings.Join(out, ", ")
}

// physicalMemory returns the memory this process may use in bytes:
// MemTotal from /proc/meminfo, or the cgroup v2 limit (memory.max) when a
// container sets a lower one; 0 where neither is readable (not Linux).
func physicalMemory() uint64 {
	var total uint64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			var kib uint64
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kib); err == nil {
				total = kib << 10
				break
			}
		}
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		var limit uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &limit); err == nil && limit > 0 && (total == 0 || limit < total) {
			total = limit // "max" (no limit) does not parse
		}
	}
	return total
}

// roleOrder returns m's roles in node.Roles order.
func roleOrder[V any](m map[node.Role]V) []node.Role {
	var out []node.Role
	for _, r := range node.Roles {
		if _, ok := m[r]; ok {
			out = append(out, r)
		}
	}
	return out
}

// writeSimOutputs writes sim.json and the plots into dir.
func writeSimOutputs(dir string, r devnet.SimReport) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sim.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	title := fmt.Sprintf("%d peers, %d shards", r.Peers, r.Shards)
	for name, draw := range map[string]func(string) (*plot.Plot, error){
		"scores.png":    func(t string) (*plot.Plot, error) { return scoresPlot(r, t) },
		"detection.png": func(t string) (*plot.Plot, error) { return detectionPlot(r, t) },
		"delay.png":     func(t string) (*plot.Plot, error) { return delayPlot(r, t) },
		"mesh.png":      func(t string) (*plot.Plot, error) { return meshPlot(r, t) },
		"slots.png":     func(t string) (*plot.Plot, error) { return slotsPlot(r, t) },
	} {
		p, err := draw(title)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// newPlot returns a plot titled "what (run)" with its axis labels.
func newPlot(what, run, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = what + " (" + run + ")"
	p.X.Label.Text = x
	p.Y.Label.Text = y
	return p
}

// scoresPlot draws each role's mean integrity score per epoch.
func scoresPlot(r devnet.SimReport, title string) (*plot.Plot, error) {
	p := newPlot("Integrity score by role", title, "epoch", "mean score in honest peers' view")
	roles := map[node.Role]plotter.XYs{}
	for _, e := range r.Trajectory {
		for role, s := range e.ByRole {
			roles[role] = append(roles[role], plotter.XY{X: float64(e.Epoch), Y: s.Mean})
		}
	}
	var args []any
	for _, role := range roleOrder(roles) {
		args = append(args, string(role), roles[role])
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return nil, err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p, nil
}

// detectionPlot draws, per adversary class, the first, median and last
// epoch its peers were caught.
func detectionPlot(r devnet.SimReport, title string) (*plot.Plot, error) {
	p := newPlot("Epoch each adversary class was caught", title, "", "epoch (first, median, last caught)")
	roles := roleOrder(r.Detection)
	var first, median, last plotter.Values
	var names []string
	for _, role := range roles {
		d := r.Detection[role]
		first, median, last = append(first, float64(max(d.First, 0))), append(median, float64(max(d.Median, 0))), append(last, float64(max(d.Last, 0)))
		names = append(names, fmt.Sprintf("%s %d/%d", role, d.Caught, d.Peers))
	}
	if len(roles) == 0 {
		return p, nil
	}
	w := vg.Points(8)
	for i, vs := range []plotter.Values{first, median, last} {
		b, err := plotter.NewBarChart(vs, w)
		if err != nil {
			return nil, err
		}
		b.Color = plotutil.Color(i)
		b.Offset = vg.Length(i-1) * w
		p.Add(b)
		p.Legend.Add([]string{"first", "median", "last"}[i], b)
	}
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.5
	p.X.Tick.Label.XAlign = -1
	p.Legend.Top = true
	return p, nil
}

// delayPlot draws the challenge-to-attestation delay percentiles per epoch.
func delayPlot(r devnet.SimReport, title string) (*plot.Plot, error) {
	p := newPlot("Challenge-to-attestation delay", title, "epoch", "ms")
	var p50, p99 plotter.XYs
	for _, e := range r.Trajectory {
		if e.Attestations == 0 {
			continue
		}
		p50 = append(p50, plotter.XY{X: float64(e.Epoch), Y: e.DelayP50MS})
		p99 = append(p99, plotter.XY{X: float64(e.Epoch), Y: e.DelayP99MS})
	}
	if err := plotutil.AddLinePoints(p, "p50", p50, "p99", p99); err != nil {
		return nil, err
	}
	p.Legend.Top = true
	return p, nil
}

// meshPlot draws how many nodes have each mesh degree.
func meshPlot(r devnet.SimReport, title string) (*plot.Plot, error) {
	p := newPlot("Mesh degree on the attestation topic", title, "mesh peers", "nodes")
	var degrees []int
	for d := range r.MeshDegree {
		degrees = append(degrees, d)
	}
	slices.Sort(degrees)
	if len(degrees) == 0 {
		return p, nil
	}
	vs := make(plotter.Values, degrees[len(degrees)-1]+1)
	for d, c := range r.MeshDegree {
		vs[d] = float64(c)
	}
	b, err := plotter.NewBarChart(vs, vg.Points(12))
	if err != nil {
		return nil, err
	}
	b.Color = color.RGBA{B: 180, A: 255}
	p.Add(b)
	return p, nil
}

// printSlots prints who held the judge slots: by role, over the run and
// from r.SlotsFrom on, and, per adversary role, the shards where it held
// slots from then on.
func printSlots(w io.Writer, r devnet.SimReport) {
	var all devnet.SlotCount
	for _, c := range r.Slots {
		all.Challenger, all.Verifier, all.ChallengerFrom, all.VerifierFrom = all.Challenger+c.Challenger, all.Verifier+c.Verifier, all.ChallengerFrom+c.ChallengerFrom, all.VerifierFrom+c.VerifierFrom
	}
	pct := func(a, b int) float64 { return 100 * float64(a) / float64(max(b, 1)) }
	for _, role := range roleOrder(r.Slots) {
		c := r.Slots[role]
		fmt.Fprintf(w, "sim: slots %-14s %4d peers: challenger %5d (%4.1f%%) verifier %6d (%4.1f%%); from epoch %d: challenger %5d (%4.1f%%) verifier %6d (%4.1f%%)\n",
			role, c.Peers, c.Challenger, pct(c.Challenger, all.Challenger), c.Verifier, pct(c.Verifier, all.Verifier),
			r.SlotsFrom, c.ChallengerFrom, pct(c.ChallengerFrom, all.ChallengerFrom), c.VerifierFrom, pct(c.VerifierFrom, all.VerifierFrom))
		if !role.Adversary() {
			continue
		}
		var shards, held int
		var worst float64
		for _, m := range r.ShardSlots {
			if m[role] == nil {
				continue
			}
			shards++
			var tc, tv int
			for _, x := range m {
				tc, tv = tc+x.ChallengerFrom, tv+x.VerifierFrom
			}
			if m[role].ChallengerFrom+m[role].VerifierFrom > 0 {
				held++
				worst = max(worst, pct(m[role].ChallengerFrom, tc), pct(m[role].VerifierFrom, tv))
			}
		}
		fmt.Fprintf(w, "sim: slots %-14s from epoch %d held slots in %d of the %d shards it is in (at most %.1f%% of a shard's challenger or verifier slots)\n",
			role, r.SlotsFrom, held, shards, worst)
	}
}

// slotsPlot draws each role's share of the epoch's verifier and
// challenger slots.
func slotsPlot(r devnet.SimReport, title string) (*plot.Plot, error) {
	p := newPlot("Share of the judge slots by role", title, "epoch", "% of the epoch's slots")
	type xy struct{ c, v plotter.XYs }
	roles := map[node.Role]*xy{}
	for _, e := range r.Trajectory {
		var tc, tv int
		for _, s := range e.ByRole {
			tc, tv = tc+s.ChallengerSlots, tv+s.VerifierSlots
		}
		for role, s := range e.ByRole {
			if roles[role] == nil {
				roles[role] = &xy{}
			}
			x := float64(e.Epoch)
			roles[role].c = append(roles[role].c, plotter.XY{X: x, Y: 100 * float64(s.ChallengerSlots) / float64(max(tc, 1))})
			roles[role].v = append(roles[role].v, plotter.XY{X: x, Y: 100 * float64(s.VerifierSlots) / float64(max(tv, 1))})
		}
	}
	var args []any
	for _, role := range roleOrder(roles) {
		args = append(args, string(role)+" challenger", roles[role].c, string(role)+" verifier", roles[role].v)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return nil, err
	}
	p.Legend.Top = true
	p.Legend.YOffs = -vg.Points(40) // below the 100 % line
	return p, nil
}
