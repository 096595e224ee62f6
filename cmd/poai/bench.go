package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/cuda"
	"github.com/poai-network/poai/gpu/llm"
	"github.com/poai-network/poai/node"
)

// benchResult is one line of `poai bench`.
type benchResult struct {
	Workload     string  `json:"workload"`
	Params       string  `json:"params"`
	ProveMS      float64 `json:"prove_ms"`
	Throughput   float64 `json:"throughput"`
	Unit         string  `json:"unit"`
	VerifyMS     float64 `json:"verify_ms"`
	VerifyTime   float64 `json:"verify_time_fraction"`
	VerifyWork   float64 `json:"verify_work_fraction"`
	Verdict      string  `json:"verdict"`
	ProverWork   float64 `json:"prover_work"`
	VerifierWork float64 `json:"verifier_work"`
}

func benchCmd() *cobra.Command {
	var (
		reps         int
		workers      int
		jsonOut      bool
		size         float64
		backend      string
		int8s        string
		bf16s        string
		gopts        gpuBenchOptions
		copyMiB      int
		verifierOnly bool
		workload     string
		llmStages    int
		llmLinks     int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the proof workloads: on the CPU with their verification cost, or on a CUDA GPU",
		Long: `bench runs each proof workload (int8 product, bf16 product, VRAM proof) on the
CPU backend, keeps the best of --reps runs, then verifies one answer the way a
verifier does. It prints, per workload: the prover's time and throughput (int8
in GOPS, bf16 in GFLOPS, 2 operations per multiply-add; VRAM in million SHA-256
evaluations per second), and the verifier's time per challenge, as milliseconds
and as a fraction of the prover's time and work (multiply-adds or hashes).

With --backend cuda it measures GPU 0 instead: each GEMM path (cuBLASLt when
it loads, and poai's embedded kernels) on the --gemm-int8 and --gemm-bf16
shapes, alone and as the whole streamed workload; the device-to-device copy
bandwidth; the VRAM proof over --vram-fraction of the free memory; and, with
--catalog MODEL, the full-size int8 challenge a challenger sends a claim of
MODEL, proved here and by a half-speed adversary, against its deadline.

--verifier-only --catalog MODEL (or all) proves nothing: it times one
verifier's work on one CPU core for the int8 challenge a claim of MODEL
gets, against the prover's anticipated time.

--workload llm runs the llm workload instead (docs/llm-spec.md): the
reference transformer at the devnet shape on the prompt, decoding its
tokens, committed; then one verifier's checks (--llm-stages stage checks,
--llm-links decode links). It prints tokens per second, multiply-adds per
second, the verifier's time and multiply-adds and their ratio to the
prover's, the opening's size, and the verifier's projection of the
weights, which it computes once per model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			switch workload {
			case "all":
			case "llm":
				if backend != "cpu" || verifierOnly {
					return fmt.Errorf("--workload llm runs on the cpu backend, without --verifier-only")
				}
				if llmStages < 1 || llmLinks < 0 {
					return fmt.Errorf("--llm-stages %d, --llm-links %d: want at least one stage check and no negative link count", llmStages, llmLinks)
				}
				return benchLLM(ctx, cmd.OutOrStdout(), llm.DevnetConfig, reps, llmStages, llmLinks, jsonOut)
			default:
				return fmt.Errorf("--workload %q: want all (the int8, bf16 and VRAM proofs) or llm", workload)
			}
			if verifierOnly {
				if backend != "cpu" || gopts.catalog == "" {
					return fmt.Errorf("--verifier-only needs --catalog MODEL (or all) on the cpu backend")
				}
				return benchVerifier(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), gopts.catalog, jsonOut)
			}
			switch backend {
			case "cpu":
			case "cuda":
				var err error
				if gopts.int8Shapes, err = parseShapes(int8s); err != nil {
					return fmt.Errorf("--gemm-int8: %w", err)
				}
				if gopts.bf16Shapes, err = parseShapes(bf16s); err != nil {
					return fmt.Errorf("--gemm-bf16: %w", err)
				}
				if gopts.vramFraction < 0 || gopts.vramFraction > 0.98 {
					return fmt.Errorf("--vram-fraction %.2f: want 0 (skip) to 0.98", gopts.vramFraction)
				}
				b, err := cuda.Open(cuda.Options{})
				if err != nil {
					return err
				}
				defer b.Close()
				gopts.reps, gopts.json, gopts.copyBytes = max(reps, 1), jsonOut, uint64(copyMiB)<<20
				return benchGPU(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), b, gopts)
			default:
				return fmt.Errorf("--backend %q: want cpu or cuda", backend)
			}
			cpu := gpu.NewCPU()
			if workers > 0 {
				cpu = gpu.NewCPU(gpu.WithWorkers(workers))
			}
			cfg := node.DefaultConfig().Challenge
			openings := challenge.OpeningsFor(cfg.CheatFraction, cfg.PassProb)
			int8Rows := int(2048 * size)
			bf16Rows := max(int(8192*size), 100*openings)
			vram := challenge.DefaultVRAMSizing().ParamsFor(uint64(float64(2<<20) * size))
			jobs := []struct {
				name string
				ch   *pb.Challenge
			}{
				{"int8 GEMM", gemm(pb.Workload_WORKLOAD_GEMM_INT8, int8Rows, cfg.K, cfg.M, openings)},
				{"bf16 GEMM", gemm(pb.Workload_WORKLOAD_GEMM_BF16, bf16Rows, cfg.BF16K, cfg.BF16M, openings)},
				{"VRAM proof", vramChallenge(vram, openings)},
			}
			bar := newProgress(cmd.ErrOrStderr(), len(jobs)*(reps+1))
			var results []benchResult
			for _, j := range jobs {
				target, challenger := benchPeer(), benchPeer()
				j.ch.Target, j.ch.Challenger = []byte(target), []byte(challenger)
				secret := benchNonce()
				j.ch.RevealHash = challenge.RevealHash(secret)
				_, chCID, err := challenge.MessageCID(j.ch)
				if err != nil {
					return err
				}
				var (
					com  *pb.Commitment
					op   *pb.Opening
					best time.Duration
				)
				for r := range reps {
					bar.step(fmt.Sprintf("%s: prove %d/%d", j.name, r+1, reps))
					start := time.Now()
					com, op, err = challenge.Prove(ctx, cpu, j.ch, chCID, target, secret)
					if err != nil {
						return err
					}
					if d := time.Since(start); best == 0 || d < best {
						best = d
					}
				}
				bar.step(j.name + ": verify")
				_, comCID, _ := challenge.MessageCID(com)
				vstart := time.Now()
				res, err := challenge.Verify(ctx, cpu, j.ch, chCID, com, comCID, op, secret)
				if err != nil {
					return err
				}
				vtime := time.Since(vstart)
				results = append(results, summarize(j.name, j.ch, best, vtime, res))
			}
			bar.done()
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(results)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "WORKLOAD\tPARAMS\tPROVE ms\tTHROUGHPUT\tVERIFY ms\tVERIFY/PROVE time\tVERIFY/PROVE work\tVERDICT\n")
			for _, r := range results {
				fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.3f %s\t%.2f\t%.3f%%\t%.3f%%\t%s\n", r.Workload, r.Params, r.ProveMS, r.Throughput, r.Unit,
					r.VerifyMS, 100*r.VerifyTime, 100*r.VerifyWork, r.Verdict)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.IntVar(&reps, "reps", 3, "prover runs per workload; the best is kept")
	f.StringVar(&workload, "workload", "all", "all: the int8, bf16 and VRAM proofs; llm: the llm workload (docs/llm-spec.md) and its checks")
	f.IntVar(&llmStages, "llm-stages", 48, "with --workload llm: stage checks per challenge")
	f.IntVar(&llmLinks, "llm-links", llm.DevnetConfig.Decode, "with --workload llm: decode-link checks per challenge (at most the decoded tokens; all by default: a guessed decode is wrong at links only)")
	f.IntVar(&workers, "workers", 0, "CPU threads for the backend (0: all cores)")
	f.Float64Var(&size, "size", 1, "scale of the workloads (1: about a second of prover work per workload on one core)")
	f.BoolVar(&jsonOut, "json", false, "print the results as JSON")
	f.StringVar(&backend, "backend", "cpu", "cpu: the proof workloads and their verification on the CPU; cuda: the GPU figures (GEMM per path, copy bandwidth, VRAM proof, catalog challenge)")
	f.StringVar(&int8s, "gemm-int8", "8192x8192x8192,16384x16384x16384", "cuda: int8 GEMM shapes NxKxM to time, comma-separated")
	f.StringVar(&bf16s, "gemm-bf16", "8192x4096x4096,8192x8192x8192", "cuda: bf16 GEMM shapes NxKxM to time, comma-separated")
	f.IntVar(&copyMiB, "copy-mib", 8192, "cuda: size of the device-to-device copy that gives the bandwidth reference, MiB (0 skips)")
	f.Float64Var(&gopts.vramFraction, "vram-fraction", 0.9, "cuda: fraction of the free device memory the VRAM proof fills (0 skips)")
	f.IntVar(&gopts.vramReadsPerBlock, "vram-reads-per-block", 1, "cuda: lane reads per block of the VRAM proof run (the protocol uses 64)")
	f.StringVar(&gopts.catalog, "catalog", "", "cuda: a catalog model (e.g. \"NVIDIA H200\") whose full-size int8 challenge to prove here, in time or not, and by a half-speed adversary; with --verifier-only, the model (or all) whose verifier to time")
	f.BoolVar(&verifierOnly, "verifier-only", false, "with --catalog MODEL or all: one verifier's time on one core for the int8 challenge a claim of the model gets (Freivalds and check digest, nothing proved), the prover's anticipated time and their ratio")
	return cmd
}

func gemm(w pb.Workload, n, k, m, openings int) *pb.Challenge {
	return &pb.Challenge{Version: 1, Workload: w, N: uint32(n), K: uint32(k), M: uint32(m),
		Openings: uint32(min(openings, n)), Nonce: benchNonce(), DeadlineMs: 1}
}

func vramChallenge(p gpu.VRAMParams, openings int) *pb.Challenge {
	return &pb.Challenge{Version: 1, Workload: pb.Workload_WORKLOAD_VRAM, Nonce: benchNonce(), DeadlineMs: 1,
		VramLanes: uint32(p.Lanes), VramLaneBlocks: uint32(p.Blocks), VramRounds: uint32(p.Rounds), VramReads: uint32(p.Reads),
		Openings: uint32(min(openings, p.Lanes))}
}

func summarize(name string, ch *pb.Challenge, prove, verify time.Duration, res challenge.Result) benchResult {
	r := benchResult{Workload: name, ProveMS: ms(prove), VerifyMS: ms(verify), VerifyTime: verify.Seconds() / prove.Seconds(), Verdict: res.Verdict.String()}
	switch ch.GetWorkload() {
	case pb.Workload_WORKLOAD_VRAM:
		p := challenge.VRAMParamsOf(ch)
		r.Params = fmt.Sprintf("%d lanes x %d blocks (%d KiB), %d rounds, %d reads/lane", p.Lanes, p.Blocks, p.Bytes()>>10, p.Rounds, p.Reads)
		r.ProverWork = p.Hashes()
		r.VerifierWork = float64(ch.GetOpenings()) * float64(p.Reads) * float64(p.Rounds+1)
		r.Throughput, r.Unit = p.Hashes()/prove.Seconds()/1e6, "M hashes/s"
	default:
		s := challenge.ShapeOf(ch)
		r.Params = fmt.Sprintf("%dx%dx%d, %d rows opened", s.N, s.K, s.M, ch.GetOpenings())
		r.ProverWork = s.MACs()
		r.VerifierWork = challenge.VerifierMACs(ch.GetWorkload(), s, int(ch.GetOpenings()))
		r.Throughput, r.Unit = 2*s.MACs()/prove.Seconds()/1e9, "GOPS"
		if ch.GetWorkload() == pb.Workload_WORKLOAD_GEMM_BF16 {
			r.Unit = "GFLOPS"
		}
	}
	r.VerifyWork = r.VerifierWork / r.ProverWork
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func benchNonce() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

func benchPeer() peer.ID {
	_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPublicKey(pub)
	return id
}

// progress draws a progress bar on a terminal, or one line per step
// elsewhere.
type progress struct {
	w     io.Writer
	total int
	n     int
	tty   bool
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, tty: isTerminal(w)}
}

func (p *progress) step(label string) {
	p.n++
	if !p.tty {
		fmt.Fprintf(p.w, "bench: [%d/%d] %s\n", p.n, p.total, label)
		return
	}
	const width = 30
	filled := width * (p.n - 1) / p.total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %-40s", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), p.n, p.total, label)
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 90))
	}
}
