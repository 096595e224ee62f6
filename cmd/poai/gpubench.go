package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/cuda"
	"github.com/poai-network/poai/node"
)

// gpuBenchOptions are the GPU sections of `poai bench --backend cuda`.
type gpuBenchOptions struct {
	int8Shapes, bf16Shapes []gpu.Shape
	reps                   int
	copyBytes              uint64
	vramFraction           float64
	vramReadsPerBlock      int
	catalog                string
	json                   bool
}

// gpuBenchReport is what the GPU sections measured; scripts/gpu-check.sh
// reads it (--json) and sets it beside cuBLAS's figures.
type gpuBenchReport struct {
	Device   cuda.DeviceInfo `json:"device"`
	GEMM     []gemmFigure    `json:"gemm"`
	CopyGBps float64         `json:"copy_gbps"`
	VRAM     *vramFigure     `json:"vram,omitempty"`
	Catalog  []catalogRun    `json:"catalog,omitempty"`
}

type gemmFigure struct {
	Type  string  `json:"type"` // int8 or bf16
	Path  string  `json:"path"` // cublaslt or embedded
	Shape string  `json:"shape"`
	MS    float64 `json:"ms"`
	// TOPS is 10^12 operations per second (2 per multiply-add).
	TOPS float64 `json:"tops"`
	// OfPeak is TOPS over the catalog's dense peak for the device, when
	// the device is in the catalog.
	OfPeak float64 `json:"of_peak,omitempty"`
	// Workload is the whole streamed workload (Philox fill, GEMM, leaf
	// hashing, leaves back to the host) on the same shape, in TOPS.
	WorkloadTOPS float64 `json:"workload_tops,omitempty"`
}

type vramFigure struct {
	Params      string  `json:"params"`
	Bytes       uint64  `json:"bytes"`
	OfFree      float64 `json:"of_free"`
	FillMS      float64 `json:"fill_ms"`
	LanesMS     float64 `json:"lanes_ms"`
	GHashesPerS float64 `json:"g_hashes_per_s"`
	// GBps counts the bytes the fill writes and the lanes read, over the
	// whole time: the figure to set beside the copy bandwidth.
	GBps float64 `json:"fill_and_read_gbps"`
}

type catalogRun struct {
	Model       string  `json:"model"`
	Prover      string  `json:"prover"`
	Shape       string  `json:"shape"`
	AnticipMS   float64 `json:"anticipated_ms"`
	DeadlineMS  float64 `json:"deadline_ms"`
	CommitMS    float64 `json:"commit_ms"`
	InTime      bool    `json:"in_time"`
	OpenMS      float64 `json:"open_ms"`
	VerifyMS    float64 `json:"verify_ms"`
	Verdict     string  `json:"verdict"`
	AchievedOPS float64 `json:"achieved_tops"`
}

func parseShapes(s string) ([]gpu.Shape, error) {
	var out []gpu.Shape
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		dims := strings.Split(part, "x")
		if len(dims) != 3 {
			return nil, fmt.Errorf("shape %q: want NxKxM", part)
		}
		var v [3]int
		for i, d := range dims {
			n, err := strconv.Atoi(d)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("shape %q: %q is not a positive integer", part, d)
			}
			v[i] = n
		}
		out = append(out, gpu.Shape{N: v[0], K: v[1], M: v[2]})
	}
	return out, nil
}

func shapeString(s gpu.Shape) string { return fmt.Sprintf("%dx%dx%d", s.N, s.K, s.M) }

// throttled is an ADVERSARY for `poai bench --catalog`: a device that runs
// at half the speed of the one it claims (every product computed twice).
// It exists to show that such a device misses a catalog deadline.
type throttled struct{ *cuda.Backend }

func (t throttled) LeavesInt8(ctx context.Context, seed gpu.Seed, s gpu.Shape) ([][32]byte, error) {
	if _, err := t.Backend.LeavesInt8(ctx, seed, s); err != nil {
		return nil, err
	}
	return t.Backend.LeavesInt8(ctx, seed, s)
}

func benchGPU(ctx context.Context, out, progress io.Writer, b *cuda.Backend, o gpuBenchOptions) error {
	rep := gpuBenchReport{Device: b.Device()}
	spec, inCatalog := gpu.LookupDevice(rep.Device.Name)
	say := func(format string, a ...any) {
		if !o.json {
			fmt.Fprintf(out, format, a...)
		}
	}
	say("device: %s, %.1f GiB (%.1f GiB free), compute capability %d.%d, %d SMs, driver API %d, cuBLASLt %v %s\n",
		rep.Device.Name, float64(rep.Device.TotalBytes)/(1<<30), float64(rep.Device.FreeBytes)/(1<<30),
		rep.Device.ComputeMajor, rep.Device.ComputeMinor, rep.Device.Multiprocessors, rep.Device.DriverVersion,
		rep.Device.CublasLt, rep.Device.CublasLtError)

	paths := []string{"embedded"}
	if rep.Device.CublasLt {
		paths = append([]string{"cublaslt"}, paths...)
	}
	for _, typ := range []string{"int8", "bf16"} {
		shapes := o.int8Shapes
		if typ == "bf16" {
			shapes = o.bf16Shapes
		}
		for _, s := range shapes {
			for _, path := range paths {
				fmt.Fprintf(progress, "bench: %s GEMM %s on %s\n", typ, shapeString(s), path)
				d, err := b.GEMMTime(typ == "bf16", s, path, o.reps)
				if err != nil {
					say("%s %s %s: %v\n", typ, shapeString(s), path, err)
					continue
				}
				f := gemmFigure{Type: typ, Path: path, Shape: shapeString(s), MS: ms(d), TOPS: 2 * s.MACs() / d.Seconds() / 1e12}
				if inCatalog {
					peak := spec.FastestExactInt8()
					if typ == "bf16" {
						peak = spec.FastestAcceptableBF16()
					}
					f.OfPeak = f.TOPS / peak
				}
				rep.GEMM = append(rep.GEMM, f)
			}
			// The whole workload, on the backend's default path.
			start := time.Now()
			var err error
			if typ == "int8" {
				_, err = b.LeavesInt8(ctx, gpu.Seed{7}, s)
			} else {
				_, err = b.LeavesBF16(ctx, gpu.Seed{7}, s)
			}
			if err == nil && len(rep.GEMM) > 0 {
				rep.GEMM[len(rep.GEMM)-len(paths)].WorkloadTOPS = 2 * s.MACs() / time.Since(start).Seconds() / 1e12
			}
		}
	}
	say("%-5s %-9s %-18s %10s %10s %8s %14s\n", "TYPE", "PATH", "SHAPE", "ms", "TOPS", "of peak", "workload TOPS")
	for _, g := range rep.GEMM {
		say("%-5s %-9s %-18s %10.3f %10.1f %7.1f%% %14.1f\n", g.Type, g.Path, g.Shape, g.MS, g.TOPS, 100*g.OfPeak, g.WorkloadTOPS)
	}

	if o.copyBytes > 0 {
		fmt.Fprintf(progress, "bench: device-to-device copy of %d MiB\n", o.copyBytes>>20)
		bw, err := b.CopyBandwidth(o.copyBytes, 10)
		if err != nil {
			return err
		}
		rep.CopyGBps = bw / 1e9
		say("device-to-device copy: %.0f GB/s (bytes read + written)\n", rep.CopyGBps)
	}

	if o.vramFraction > 0 {
		free := b.Device().FreeBytes
		total := uint64(o.vramFraction*float64(free)) / gpu.VRAMBlockBytes
		lanes := uint64(1 << 20)
		p := gpu.VRAMParams{Lanes: int(lanes), Blocks: int(total / lanes), Rounds: challenge.DefaultVRAMSizing().Rounds}
		p.Reads = p.Blocks * o.vramReadsPerBlock
		fmt.Fprintf(progress, "bench: VRAM proof over %.1f GiB\n", float64(p.Bytes())/(1<<30))
		_, _, t, err := b.VRAMTimed(ctx, gpu.Seed{9}, p)
		if err != nil {
			return err
		}
		all := t.Fill + t.Lanes
		reads := float64(p.Lanes) * float64(p.Reads)
		rep.VRAM = &vramFigure{
			Params: fmt.Sprintf("%d lanes x %d blocks, %d rounds, %d reads/lane", p.Lanes, p.Blocks, p.Rounds, p.Reads),
			Bytes:  p.Bytes(), OfFree: float64(p.Bytes()) / float64(free),
			FillMS: ms(t.Fill), LanesMS: ms(t.Lanes),
			GHashesPerS: (float64(p.Lanes)*float64(p.Blocks)*float64(p.Rounds) + 2*reads) / all.Seconds() / 1e9,
			GBps:        (float64(p.Bytes()) + reads*gpu.VRAMBlockBytes) / all.Seconds() / 1e9,
		}
		say("VRAM proof: %s = %.1f GiB (%.1f%% of free): fill %.0f ms, lanes %.0f ms, %.1f G SHA-256 compressions/s, fill-and-read %.1f GB/s\n",
			rep.VRAM.Params, float64(p.Bytes())/(1<<30), 100*rep.VRAM.OfFree, rep.VRAM.FillMS, rep.VRAM.LanesMS, rep.VRAM.GHashesPerS, rep.VRAM.GBps)
	}

	if o.catalog != "" {
		for _, prover := range []string{"honest", "half-speed adversary"} {
			r, err := catalogChallenge(ctx, progress, b, o.catalog, prover)
			if err != nil {
				return err
			}
			rep.Catalog = append(rep.Catalog, r)
			say("catalog challenge for %q, %s prover: %s, anticipated %.0f ms, deadline %.0f ms, commitment after %.0f ms (in time: %v, %.0f TOPS), opening %.0f ms, CPU verification %.0f ms: %s\n",
				r.Model, r.Prover, r.Shape, r.AnticipMS, r.DeadlineMS, r.CommitMS, r.InTime, r.AchievedOPS, r.OpenMS, r.VerifyMS, r.Verdict)
		}
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return nil
}

// catalogChallenge plans the int8 challenge a challenger sends a claim of
// model (the default planner: 2 s target, slack 2.5, 0.5 s allowance),
// proves it on b (or on the half-speed adversary) and verifies it on the
// CPU as a verifier does.
func catalogChallenge(ctx context.Context, progress io.Writer, b *cuda.Backend, model, prover string) (catalogRun, error) {
	cfg := node.DefaultConfig().Challenge
	planner := cfg.Planner()
	claim := &pb.DeviceClaim{Model: model, Count: 1}
	pl, err := planner.Plan(claim, pb.Workload_WORKLOAD_GEMM_INT8)
	if err != nil {
		return catalogRun{}, fmt.Errorf("plan for %q: %w", model, err)
	}
	target := benchPeer()
	ch, chCID, secret, err := benchChallenge(pl, target)
	if err != nil {
		return catalogRun{}, err
	}
	var backend gpu.Backend = b
	if prover != "honest" {
		backend = throttled{b}
	}
	fmt.Fprintf(progress, "bench: catalog challenge %s for %q (%s prover)\n", shapeString(pl.Shape), model, prover)
	start := time.Now()
	committed, err := challenge.Run(ctx, backend, ch, chCID, target)
	if err != nil {
		return catalogRun{}, err
	}
	commit := time.Since(start)
	r := catalogRun{Model: model, Prover: prover, Shape: shapeString(pl.Shape), AnticipMS: ms(pl.Anticipated), DeadlineMS: ms(pl.Deadline),
		CommitMS: ms(commit), InTime: commit <= pl.Deadline, AchievedOPS: 2 * pl.Shape.MACs() / commit.Seconds() / 1e12}
	start = time.Now()
	op, err := committed.Open(ctx, ch, secret)
	if err != nil {
		return r, err
	}
	r.OpenMS = ms(time.Since(start))
	start = time.Now()
	res, err := challenge.Verify(ctx, gpu.NewCPU(), ch, chCID, committed.Commitment, committed.CommitmentCID, op, secret)
	if err != nil {
		return r, err
	}
	r.VerifyMS = ms(time.Since(start))
	r.Verdict = res.Verdict.String()
	return r, nil
}
