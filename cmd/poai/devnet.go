package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/internal/flagcheck"
	"github.com/poai-network/poai/internal/logging"
	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
)

func devnetCmd() *cobra.Command {
	var (
		nodes       int
		adversaries string
		duration    time.Duration
		target      time.Duration
		epoch       time.Duration
		jsonOut     bool
		check       bool
		dataDir     string
		logLevel    string
		slack       float64
		gpuMode     string
		allowance   time.Duration
		waves       int
		workloads   string
		exportOut   string
		emulated    int
		devices     string
		pretrusted  int
		pprofAddr   string
		apiAddr     string
		keep        bool
	)
	cmd := &cobra.Command{
		Use:   "devnet",
		Short: "Run a local network of real nodes, with labelled adversaries, and report their scores",
		Long: `devnet starts N real poai nodes in this process on 127.0.0.1, with real TCP and
QUIC transports, real gossipsub and one Badger store each, all proving on the
CPU backend. Some of them are ADVERSARIES, labelled as such:

  slow    claims 8x the throughput it has, so its work is sized for a faster
          device and it misses deadlines
  lazy    computes only half of the rows of C and fills the rest with noise
  replay  answers every challenge after the first with its first result

The sibling, inflate and vram-dodger adversaries (and --emulated honest
nodes) prove on emulated devices: devnet twins of catalog GPUs ("devnet A100
80GB SXM") whose figures are the catalog's scaled to this CPU, the CPU
computing the answers and the emulated device's budget deciding when they
may leave. With --devices emulated every node has a device of its own
(the devices share this machine's cores, so each is slower than with
fewer nodes), a relay proves on its accomplice's and the shared-device
identities share one per pair, so a shared device is no longer hidden by
every node sharing the CPU; the defaults become the wave schedule with a
deadline one device cannot meet twice (--waves 1 --slack 1.3 --allowance
200ms), and the run fails as a test-bed failure, blaming no node, when
more than 5% of the emulated workloads overran (the host finished the
arithmetic after the device would have).

and more (--adversaries lists every role; docs/adversaries.md says what
each does and what catches it).

A live table of peers and scores is drawn on stderr every epoch. At the end,
--json prints the report on stdout: per peer its peer ID, role, challenges
received, passed and failed, latency p50/p99 (ms, challenge receipt to
commitment receipt on the verifiers' clocks), max score deviation, accuracy
(fraction of opened rows correct) and final score (mean of the honest
peers' views).`,
		Example: `  poai devnet
  poai devnet --nodes 6 --adversaries slow=1,lazy=1,replay=1 --duration 60s --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var fc flagcheck.Check
			fc.AtLeast("nodes", nodes, 3)
			fc.Positive("duration", duration)
			fc.Positive("target", target)
			fc.NonNegative("epoch", epoch)
			fc.NonNegative("allowance", allowance)
			if !(slack >= 1) {
				fc.Bad("slack", "%v is under 1", slack)
			}
			fc.Between("waves", waves, 0, challenge.MaxWaves)
			fc.AtLeast("emulated", emulated, 0)
			fc.AtLeast("pretrusted", pretrusted, 0)
			fc.OneOf("devices", devices, string(devnet.DevicesHost), string(devnet.DevicesEmulated))
			if cmd.Flags().Changed("workload") && cmd.Flags().Changed("workloads") {
				fc.Bad("workload", "conflicts with --workloads: give one")
			}
			if err := fc.Err(); err != nil {
				return err
			}
			if gpuMode != "auto" && gpuMode != "off" {
				return fmt.Errorf("--gpu %q: want auto or off", gpuMode)
			}
			adv, err := devnet.ParseAdversaries(adversaries)
			if err != nil {
				return err
			}
			var wl []string
			for _, w := range strings.Split(workloads, ",") {
				if w = strings.TrimSpace(w); w == "" {
					continue
				}
				if _, err := node.ParseWorkload(w); err != nil {
					if cmd.Flags().Changed("workload") {
						return fmt.Errorf("--workload: %w", err)
					}
					return fmt.Errorf("--workloads: %w", err)
				}
				wl = append(wl, w)
			}
			if devices == string(devnet.DevicesEmulated) {
				// Devices of their own: the wave schedule, with a deadline
				// one device cannot meet twice (slack + allowance/target < 2).
				fl := cmd.Flags()
				if !fl.Changed("waves") {
					waves = 1
				}
				if !fl.Changed("slack") {
					slack = 1.3
				}
				if !fl.Changed("allowance") {
					allowance = 200 * time.Millisecond
				}
			}
			log, err := logging.New(logLevel, "text")
			if err != nil {
				return err
			}
			if pprofAddr != "" {
				srv, err := servePprof(pprofAddr, "", log)
				if err != nil {
					return err
				}
				defer srv.Shutdown(context.Background())
			}
			ctx := cmd.Context()
			start := time.Now()
			stderr := cmd.ErrOrStderr()
			fmt.Fprintf(stderr, "devnet: measuring the CPU backend and starting %d nodes...\n", nodes)
			d, err := devnet.Start(ctx, devnet.Config{
				Nodes: nodes, Adversaries: adv, DataDir: dataDir, Target: target, EpochLength: epoch, Slack: slack, Log: log, GPU: gpuMode,
				Allowance: allowance, Waves: waves, Workloads: wl, ExportOutputs: exportOut, Emulated: emulated, PreTrusted: pretrusted, Devices: devnet.DeviceMode(devices),
			})
			if err != nil {
				return err
			}
			if d.GPU != "" {
				fmt.Fprintf(stderr, "devnet: node 0 proves on the GPU (%s)\n", d.GPU)
			}
			if apiAddr != "" {
				// The first honest node's API and live page: its view of
				// the whole devnet, on one address.
				observer := d.Nodes[0]
				for _, o := range d.Nodes {
					if !o.Role().Adversary() {
						observer = o
						break
					}
				}
				mux := http.NewServeMux()
				api := observer.APIHandler("")
				mux.Handle(node.APIVersion+"/", api)
				mux.Handle("GET /{$}", api)
				srv, err := node.ServeHTTP(apiAddr, node.HostGuard(apiAddr, nil, mux), node.DefaultHTTPLimits(), log)
				if err != nil {
					d.Close()
					return fmt.Errorf("--api-addr %s: %w", apiAddr, err)
				}
				defer srv.Shutdown(context.Background())
				fmt.Fprintf(stderr, "devnet: live page and API of %s (%s) at http://%s/ (poai status --api http://%s)\n",
					observer.ID(), observer.Role(), srv.Addr(), srv.Addr())
			}
			fmt.Fprintf(stderr, "devnet: %d nodes up; CPU backend per node: %.2f int8 GOPS, %.2f bf16 GFLOPS, %.2f M hashes/s; epoch %v; running for %v (Ctrl-C stops early)\n",
				nodes, d.Measured.Int8TOPS*1e3, d.Measured.BF16TFLOPS*1e3, d.Measured.HashGHps*1e3, d.EpochLength, duration)
			end := time.NewTimer(duration)
			defer end.Stop()
			tick := time.NewTicker(d.EpochLength)
			defer tick.Stop()
			live := isTerminal(stderr)
		wait:
			for {
				select {
				case <-ctx.Done():
					break wait
				case <-end.C:
					break wait
				case <-tick.C:
					if r, err := d.Report(); err == nil {
						drawTable(stderr, d, r, time.Since(start), live)
					}
				}
			}
			r, err := d.Report()
			if err != nil {
				d.Close()
				return err
			}
			r.Elapsed = time.Since(start)
			r.ElapsedS = r.Elapsed.Seconds()
			drawTable(stderr, d, r, r.Elapsed, false)
			if keep && ctx.Err() == nil {
				fmt.Fprintln(stderr, "devnet: --duration is over and the report above is final; the network keeps running and serving (--keep) until Ctrl-C")
				<-ctx.Done()
			}
			if err := d.Close(); err != nil {
				return fmt.Errorf("devnet shutdown: %w", err)
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			verdict := "every adversary scores below every honest peer"
			if !r.Separated {
				verdict = "NOT SEPARATED: some adversary scores at or above an honest peer"
			}
			if r.Separated && !r.AllCaught {
				verdict += ", but not every adversary is graylisted"
			}
			fmt.Fprintf(stderr, "devnet: %s (honest min %.3f, adversary max %.3f, honest pass rate %.1f%%, honest peers graylisted %d), %s\n",
				verdict, r.HonestMin, r.AdversaryMax, 100*r.HonestPass, r.HonestGraylisted, r.Elapsed.Round(time.Millisecond))
			if exportOut != "" {
				lines := 0
				if b, err := os.ReadFile(exportOut); err == nil {
					lines = bytes.Count(b, []byte("\n"))
				}
				fmt.Fprintf(stderr, "devnet: %s holds %d exported llm outputs (the first honest node's passing answers, one JSON line each)\n", exportOut, lines)
			}
			if e := r.Emulator; e != nil {
				fmt.Fprintf(stderr, "devnet: emulated devices ran %d workloads, %d overran (%.1f%%, at most %.0f%%)\n", e.Workloads, e.Overruns, 100*e.Share, 100*devnet.MaxOverrunShare)
				if e.Overloaded {
					return fmt.Errorf("devnet: test bed overloaded: %d of %d emulated workloads finished on this host after their device would have, so the scores measure the host, not the nodes (fewer nodes, a longer --target, or a quieter machine)", e.Overruns, e.Workloads)
				}
			}
			if check && (!r.AllCaught || r.HonestGraylisted > 0 || r.HonestPass < 1) {
				return exitError(3)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 6, "number of nodes, adversaries included")
	f.StringVar(&adversaries, "adversaries", "slow=1,lazy=1,replay=1", "adversary roles and counts, e.g. slow=1,lazy=1,replay=1 (roles: "+adversaryRoleNames()+"; see docs/adversaries.md)")
	f.StringVar(&workloads, "workloads", "", "workloads challenges rotate through, e.g. vram, llm or int8,bf16,vram (empty: the config default)")
	f.StringVar(&workloads, "workload", "", "the same as --workloads (one workload: --workload llm)")
	f.StringVar(&exportOut, "export-outputs", "", "the first honest node appends the decoded tokens of every llm answer it verifies as passing to this JSONL file")
	f.IntVar(&emulated, "emulated", 0, "how many honest nodes prove on an emulated devnet A100 80GB SXM and claim it, instead of claiming their CPU")
	f.StringVar(&devices, "devices", "host", "\"host\": nodes prove on this machine's CPU, all sharing it; \"emulated\": every node on an emulated device of its own (a devnet A100 80GB SXM, or its role's; relay and shared-device identities share one per pair), the CPU computing the arithmetic")
	f.IntVar(&pretrusted, "pretrusted", 0, "honest nodes of each shard that every node pre-trusts ([scoring] pretrusted), as bootstrap operators: proven judges from genesis")
	f.DurationVar(&duration, "duration", 60*time.Second, "how long to run (positive)")
	f.StringVar(&gpuMode, "gpu", "auto", "\"auto\": node 0 proves on this machine's CUDA GPU when there is one; \"off\": every node on the CPU")
	f.DurationVar(&target, "target", 400*time.Millisecond, "how long one challenge should take an honest node")
	f.DurationVar(&epoch, "epoch", 0, "epoch length; 0 picks max(4s, 3 x target per node)")
	f.Float64Var(&slack, "slack", 3, "deadline = anticipated time x slack + 0.5s; all nodes share this machine, so the devnet allows more than a real node's 2.5")
	f.DurationVar(&allowance, "allowance", 0, "fixed part of every deadline, for gossip and scheduling (0: the config default, 0.5s)")
	f.IntVar(&waves, "waves", 0, "0: challenges spread over the epoch, one slot per target; N (1-4): every challenge at one of N instants per epoch ([challenge] waves), which exposes identities sharing a device (relays) when each node has a core of its own and slack + allowance/target < 2 (e.g. --waves 1 --slack 1.5 --allowance 200ms --target 1s)")
	f.BoolVar(&jsonOut, "json", false, "print the final report as JSON on stdout")
	f.BoolVar(&check, "check", false, "exit with status 3 unless every adversary ends below every honest peer and graylisted, no honest peer is graylisted, and honest peers pass every challenge")
	f.StringVar(&dataDir, "data-dir", "", "keep each node's data in this folder (default: a temporary folder, removed at the end)")
	f.StringVar(&pprofAddr, "pprof", "", pprofFlagHelp)
	f.StringVar(&apiAddr, "api-addr", "127.0.0.1:0", "serve the first honest node's JSON API and live page (its view of the devnet) at this loopback host:port, printed at start; empty to disable")
	f.BoolVar(&keep, "keep", false, "after --duration, print the table and keep the network running and serving until Ctrl-C, then print the report")
	f.StringVar(&logLevel, "log-level", "warn", "node log level on stderr: debug, info, warn or error")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// drawTable prints the peers and their scores. On a terminal it redraws in
// place.
func drawTable(w io.Writer, d *devnet.Devnet, r devnet.Report, elapsed time.Duration, redraw bool) {
	var b strings.Builder
	if redraw {
		b.WriteString("\x1b[H\x1b[2J")
	}
	fmt.Fprintf(&b, "epoch %d  elapsed %s  nodes %d\n", d.Epoch(), elapsed.Round(time.Second), r.Nodes)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PEER\tROLE\tSCORE\tGOSSIP\tCAUGHT\tRECV\tPASS\tFAIL\tP50 ms\tP99 ms\tACCURACY\tSPEED\tSLOW BY\t")
	peers := append([]devnet.PeerReport(nil), r.Peers...)
	sort.SliceStable(peers, func(i, j int) bool { return peers[i].FinalScore > peers[j].FinalScore })
	for _, p := range peers {
		role := string(p.Role)
		if p.Role.Adversary() {
			role += " (adversary)"
		}
		caught := "-"
		if p.CaughtEpoch >= 0 {
			caught = fmt.Sprintf("epoch %d", p.CaughtEpoch)
		}
		speed := "-"
		if p.Relative > 0 {
			speed = fmt.Sprintf("%.2f", p.Relative)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%d\t%d\t%d\t%.0f\t%.0f\t%.2f\t%s\t%d\t\n", "…"+p.PeerID[len(p.PeerID)-8:], role,
			integrityText(p.FinalScore, p.Trust.Evidence == 0), p.GossipScore, caught, p.Challenges, p.Passed, p.Failed, p.LatencyP50, p.LatencyP99, p.Accuracy, speed, p.FlaggedBy)
	}
	tw.Flush()
	// Why each failing peer failed: the latest verdict against it, in its
	// verifier's words, with the evidence's CIDs.
	for _, p := range peers {
		if len(p.Failures) == 0 {
			continue
		}
		f := p.Failures[0]
		why := f.Reason
		if why == "" {
			why = "(no reason given)"
		}
		fmt.Fprintf(&b, "why …%s (%s): %s by …%s: %s", p.PeerID[len(p.PeerID)-8:], p.Role, f.Verdict, f.Verifier[max(len(f.Verifier)-8, 0):], why)
		if len(f.Evidence) > 0 {
			fmt.Fprintf(&b, " [evidence %s]", strings.Join(f.Evidence, " "))
		}
		b.WriteString("\n")
	}
	io.WriteString(w, b.String())
}

// adversaryRoleNames lists every adversary role, comma-separated, in the
// order devnet reports them.
func adversaryRoleNames() string {
	var names []string
	for _, r := range node.Roles {
		if r.Adversary() {
			names = append(names, string(r))
		}
	}
	return strings.Join(names, ", ")
}
