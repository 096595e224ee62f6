package challenge

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/llm"
)

// OpeningsFor returns the number s of rows to open so that a prover that
// computed only a fraction f of the rows passes with probability at most p:
// the smallest s with f^s ≤ p, i.e. ceil(ln p / ln f). Sampling without
// replacement only lowers the cheater's odds. For f = 0.9 and p = 0.001 it
// returns 66. Arguments outside (0,1) return 1.
func OpeningsFor(f, p float64) int {
	if f <= 0 || f >= 1 || p <= 0 || p >= 1 {
		return 1
	}
	return int(math.Ceil(math.Log(p) / math.Log(f)))
}

// Efficiency is the fraction of a catalog device's peak that the best
// implementation known reaches on each workload. Deadlines are calibrated
// to it, not to whatever backend a prover says it runs: a prover cannot be
// trusted about its software, and every point of efficiency conceded here
// is margin a weaker device gets for free (see docs/soundness.md).
type Efficiency struct {
	// Int8 and BF16 are fractions of the dense tensor peak.
	Int8, BF16 float64
	// LLMInt8 and LLMBandwidth are the fractions of the dense int8 peak
	// and of the memory bandwidth the llm workload reaches (its prefill
	// and its decode steps); not the products' figures.
	LLMInt8, LLMBandwidth float64
}

// DefaultEfficiency is what the whole proof workload (Philox fill, GEMM,
// leaf hashing, leaves to the host) reached on an H200 with poai's CUDA
// backend over cuBLASLt, measured by gpu/cuda/check/gpu-check.sh
// (2026-11-30): int8 0.58 of the 1,979 TOPS dense peak (1,152 TOPS on the
// full-size 2,580,328×65,536×8,192 challenge; the GEMM alone reached 0.75);
// bf16 0.77 of 989.5 TFLOPS (cuBLAS alone reached 0.81 at 8192³).
//
// The llm figures are not measured yet (uncalibrated): LLMInt8 is what
// poai's own embedded int8 kernel reaches on an H200, 0.15 of peak
// (docs/measurements/gpu-bench-2026-11-30.json), and LLMBandwidth 0.5,
// half the peak bandwidth for the decode's weight and KV-cache reads.
// A device faster than these passes with room to spare; one slower
// than 1/Slack of them fails.
var DefaultEfficiency = Efficiency{Int8: 0.58, BF16: 0.77, LLMInt8: 0.15, LLMBandwidth: 0.5}

// Planner turns a device claim into a challenge: workload shape, openings
// and deadline.
type Planner struct {
	// Target is how long the workload should take on the claimed device.
	Target time.Duration
	// Slack multiplies the anticipated time (≥ 1); Allowance is added for
	// gossip and scheduling.
	Slack float64
	// CatalogSlack replaces Slack for a model in the catalog, whose rate
	// is calibrated to the best implementation measured on that device,
	// so the deadline needs room only for an honest device's variance;
	// 0 means Slack. Measured on an H200 (docs/soundness.md): the honest
	// full-size int8 challenge commits at 1.2× the anticipated time, a
	// half-speed device at 2.4×.
	CatalogSlack float64
	Allowance    time.Duration
	// Openings is the rows or lanes opened per challenge (OpeningsFor).
	Openings int
	// Int8K, Int8M, BF16K, BF16M fix the inner and column dimensions of
	// each product; the row count grows with the claim.
	Int8K, Int8M, BF16K, BF16M int
	// MaxRows bounds the rows of a product.
	MaxRows int
	// MaxVerifierFraction bounds a verifier's multiply-adds as a fraction
	// of the prover's; rows are added until it holds.
	MaxVerifierFraction float64
	// VRAM sizes the VRAM workload.
	VRAM VRAMSizing
	// LLM is the model llm challenges name (its dimensions; the planner
	// sizes the prompt and decode lengths, at most LLM.Prompt and
	// LLM.Decode); zero means llm.DevnetConfig. LLMLinks is how many
	// decode links each verifier checks (0: DefaultLLMLinks).
	LLM      llm.Config
	LLMLinks int
	// Efficiency calibrates catalog peaks.
	Efficiency Efficiency
	// Limits are what validators accept; every plan stays within them.
	Limits Limits
	// Catalog holds the models whose figures are floors (RatesFor); nil
	// means gpu.DefaultCatalog. A devnet plans from gpu.DevnetCatalog.
	Catalog *gpu.DeviceCatalog
}

// Lookup returns the entry of the planner's catalog for model (see
// gpu.DeviceCatalog.Lookup).
func (p Planner) Lookup(model string) (gpu.DeviceSpec, bool) {
	return cmp.Or(p.Catalog, gpu.DefaultCatalog).Lookup(model)
}

// maxCountedDevices bounds the device count RatesFor multiplies catalog
// floors by; a claim of that many is far beyond every limit anyway.
const maxCountedDevices = 1 << 10

// ErrUnplannable reports a claim the planner cannot size a meaningful
// challenge for: the workload it would need exceeds the protocol's limits,
// so the deadline would be mostly allowance.
var ErrUnplannable = errors.New("no meaningful challenge within the limits")

// Rates are the throughputs a deadline is computed from.
type Rates struct {
	Int8OPS, BF16FLOPS, HashesPerSec float64 // per second
	MemBytes                         uint64
	// LLMInt8OPS and LLMBytesPerSec are the llm workload's int8 rate
	// and memory bandwidth (bytes per second; 0 when unknown: the decode
	// is then timed by compute alone).
	LLMInt8OPS, LLMBytesPerSec float64
	// FromCatalog is true when the figures are the catalog's for the
	// claimed model rather than the claim's own.
	FromCatalog bool
}

// RatesFor returns the throughputs a challenger holds a claim to. For a
// model in the catalog (Lookup, after name normalization) every figure is
// a floor: the fastest acceptable unit's peak times Efficiency, the
// catalog's hash rate (gpu.DeviceSpec.HashGHps) and memory, each times the
// claim's device count (at least 1), or the claim's own figure where that
// is higher (a claim can only tighten its deadlines). A claim of n devices
// is held to n devices: a node proves on one device (the CUDA backend
// proves on one, and signs that one's NVML report), so a count above one
// is a claim the node fails to prove, and CrossCheck flags it too;
// where n devices' challenges exceed the limits, Check says so and the
// claim is unverifiable. For any other model, the claim's figures, which
// are the node's own measured totals.
func (p Planner) RatesFor(c *pb.DeviceClaim) Rates {
	r := Rates{
		Int8OPS: c.GetInt8Tops() * 1e12, BF16FLOPS: c.GetBf16Tflops() * 1e12,
		HashesPerSec: c.GetHashGhps() * 1e9, MemBytes: c.GetVramBytes(),
		LLMBytesPerSec: c.GetMemBandwidthGbps() * 1e9 * p.Efficiency.LLMBandwidth,
	}
	// A claim's own llm figure is its measured llm rate; without one, the
	// llm workload is held to the same share of its int8 product rate as
	// of a catalog peak.
	if r.LLMInt8OPS = c.GetLlmInt8Tops() * 1e12; r.LLMInt8OPS <= 0 && p.Efficiency.Int8 > 0 {
		r.LLMInt8OPS = r.Int8OPS * p.Efficiency.LLMInt8 / p.Efficiency.Int8
	}
	if spec, ok := p.Lookup(c.GetModel()); ok {
		n := min(max(c.GetCount(), 1), maxCountedDevices)
		r.FromCatalog = true
		r.Int8OPS = max(r.Int8OPS, float64(n)*spec.FastestExactInt8()*1e12*p.Efficiency.Int8)
		r.BF16FLOPS = max(r.BF16FLOPS, float64(n)*spec.FastestAcceptableBF16()*1e12*p.Efficiency.BF16)
		r.HashesPerSec = max(r.HashesPerSec, float64(n)*spec.HashGHps*1e9)
		r.MemBytes = max(r.MemBytes, uint64(n)*spec.VRAMBytes)
		r.LLMInt8OPS = max(r.LLMInt8OPS, float64(n)*spec.FastestExactInt8()*1e12*p.Efficiency.LLMInt8)
		r.LLMBytesPerSec = max(r.LLMBytesPerSec, float64(n)*spec.BandwidthGBps*1e9*p.Efficiency.LLMBandwidth)
	}
	return r
}

// Matches reports whether ch carries exactly this plan's workload,
// openings and deadline.
func (pl Plan) Matches(ch *pb.Challenge) bool {
	want := &pb.Challenge{}
	pl.Apply(want)
	return ch.GetWorkload() == want.GetWorkload() && ch.GetN() == want.GetN() && ch.GetK() == want.GetK() && ch.GetM() == want.GetM() &&
		ch.GetVramLanes() == want.GetVramLanes() && ch.GetVramLaneBlocks() == want.GetVramLaneBlocks() &&
		ch.GetVramRounds() == want.GetVramRounds() && ch.GetVramReads() == want.GetVramReads() &&
		ch.GetOpenings() == want.GetOpenings() && ch.GetDeadlineMs() == want.GetDeadlineMs() &&
		sameLLMShape(ch.GetLlm(), want.GetLlm())
}

// sameLLMShape reports whether two llm shapes name the same model and
// task (the weight seed aside: validators check it against the epoch).
func sameLLMShape(a, b *pb.LLMShape) bool {
	return a.GetVocab() == b.GetVocab() && a.GetDim() == b.GetDim() && a.GetHeads() == b.GetHeads() && a.GetLayers() == b.GetLayers() &&
		a.GetFfn() == b.GetFfn() && a.GetPrompt() == b.GetPrompt() && a.GetDecode() == b.GetDecode() && a.GetLinks() == b.GetLinks()
}

// Plan is one challenge's workload and timing.
type Plan struct {
	Workload    pb.Workload
	Shape       gpu.Shape      // GEMM workloads
	VRAM        gpu.VRAMParams // VRAM workload
	LLM         llm.Config     // llm workload: the model and task
	LLMLinks    int            // llm workload: decode links checked
	Openings    int
	Anticipated time.Duration
	Deadline    time.Duration
	// VerifierFraction is a verifier's work over the prover's.
	VerifierFraction float64
}

// Plan sizes workload w for claim c. It returns an error when the claim
// gives no rate for that workload.
func (p Planner) Plan(c *pb.DeviceClaim, w pb.Workload) (Plan, error) {
	r := p.RatesFor(c)
	pl := Plan{Workload: w, Openings: p.Openings}
	switch w {
	case pb.Workload_WORKLOAD_GEMM_INT8, pb.Workload_WORKLOAD_GEMM_BF16:
		k, m, rate, maxK := p.Int8K, p.Int8M, r.Int8OPS, p.Limits.MaxK
		if w == pb.Workload_WORKLOAD_GEMM_BF16 {
			k, m, rate, maxK = p.BF16K, p.BF16M, r.BF16FLOPS, min(maxK, MaxBF16K)
		}
		if rate <= 0 {
			return Plan{}, fmt.Errorf("claim of %s has no rate for %v", c.GetModel(), w)
		}
		macs := rate / 2 * p.Target.Seconds()
		rows := func() int { return int(math.Ceil(macs / float64(k) / float64(m))) }
		// A fast device needs a big product: grow k and m in turn while
		// the rows needed exceed MaxRows, keeping the opening and the
		// verifier's work within the limits.
		fits := func(k, m int) bool {
			return int64(p.Openings)*int64(m)*4 <= int64(p.Limits.MaxOpening)/2 &&
				VerifierMACs(w, gpu.Shape{N: 1, K: k, M: m}, p.Openings) <= p.Limits.MaxVerifyWork
		}
		// Provers stream A and C (gpu.Streamer), so rows are bounded by
		// the limits alone, not by what a matrix in memory may hold.
		maxRows := func() int { return min(p.MaxRows, p.Limits.MaxN) }
		for rows() > maxRows() {
			switch {
			case k <= m && 2*k <= maxK && fits(2*k, m):
				k *= 2
			case 2*m <= p.Limits.MaxM && fits(k, 2*m):
				m *= 2
			case 2*k <= maxK && fits(2*k, m):
				k *= 2
			default:
				goto sized
			}
		}
	sized:
		n := max(rows(), p.Openings, minRowsForVerifier(w, k, m, p.Openings, p.MaxVerifierFraction))
		n = min((n+7)/8*8, maxRows()/8*8)
		pl.Shape = gpu.Shape{N: n, K: k, M: m}
		pl.Openings = min(p.Openings, n)
		pl.Anticipated = time.Duration(2 * pl.Shape.MACs() / rate * float64(time.Second))
		pl.VerifierFraction = VerifierMACs(w, pl.Shape, pl.Openings) / pl.Shape.MACs()
		if pl.Anticipated < p.Target/2 {
			// The limits capped the product: timed against its deadline, a
			// device at a fraction of its claim would pass.
			return Plan{}, fmt.Errorf("%w: %v for %s: the largest product the limits allow, %v, takes %v, under half the %v target",
				ErrUnplannable, w, c.GetModel(), pl.Shape, pl.Anticipated, p.Target)
		}
	case pb.Workload_WORKLOAD_VRAM:
		if r.HashesPerSec <= 0 || r.MemBytes == 0 {
			return Plan{}, fmt.Errorf("claim of %s has no memory or hash rate for the VRAM workload", c.GetModel())
		}
		pl.VRAM = p.VRAM.ParamsFor(r.MemBytes)
		if err := pl.VRAM.Validate(); err != nil || pl.VRAM.Lanes > p.Limits.MaxLanes {
			return Plan{}, fmt.Errorf("%w: %d bytes of memory", ErrUnplannable, r.MemBytes)
		}
		pl.Openings = min(p.Openings, pl.VRAM.Lanes)
		pl.Anticipated = time.Duration(pl.VRAM.Hashes() / r.HashesPerSec * float64(time.Second))
		pl.VerifierFraction = float64(pl.Openings) * float64(pl.VRAM.Reads) * float64(pl.VRAM.Rounds+1) / pl.VRAM.Hashes()
	case pb.Workload_WORKLOAD_LLM:
		if err := p.planLLM(&pl, r); err != nil {
			return Plan{}, fmt.Errorf("%w: llm for %s: %v", ErrUnplannable, c.GetModel(), err)
		}
	default:
		return Plan{}, fmt.Errorf("cannot plan workload %v", w)
	}
	slack := p.Slack
	if r.FromCatalog && p.CatalogSlack > 0 {
		slack = p.CatalogSlack
	}
	pl.Deadline = time.Duration(float64(pl.Anticipated)*slack) + p.Allowance
	// When the allowance is most of the deadline, the deadline measures the
	// network, not the device: refuse rather than pretend.
	if float64(pl.Anticipated)*slack < float64(p.Allowance) {
		return Plan{}, fmt.Errorf("%w: %v of %v work on %s (anticipated %v, allowance %v)", ErrUnplannable,
			w, pl.Shape, c.GetModel(), pl.Anticipated, p.Allowance)
	}
	// Every plan must pass the validators, the challenger's own included:
	// a challenge they reject proves nothing, and the claim must be
	// flagged rather than left untested.
	ch := &pb.Challenge{}
	pl.Apply(ch)
	if err := p.Limits.checkDeadline(ch); err != nil {
		return Plan{}, fmt.Errorf("%w: %v for %s (anticipated %v): %v", ErrUnplannable, w, c.GetModel(), pl.Anticipated, err)
	}
	if err := p.Limits.checkWorkload(ch); err != nil {
		return Plan{}, fmt.Errorf("%w: %v for %s: %v", ErrUnplannable, w, c.GetModel(), err)
	}
	return pl, nil
}

// Check returns nil when c can be challenged with every workload of ws
// that proves what it claims, else an error wrapping ErrUnplannable that
// names the first that cannot. int8 must plan (it proves the throughput
// every claim states); VRAM must plan when the claim has memory (its own
// figure or its catalog model's); bf16 is planned where it can be and may
// fail alone, since its limits (MaxBF16K, MaxM, MaxRows) cap the product
// below half the target on a fast GPU (docs/soundness.md). At least one
// workload of ws must plan.
func (p Planner) Check(c *pb.DeviceClaim, ws []pb.Workload) error {
	var first error
	planned := false
	for _, w := range ws {
		_, err := p.Plan(c, w)
		if err == nil {
			planned = true
			continue
		}
		first = cmp.Or(first, err)
		required := w == pb.Workload_WORKLOAD_GEMM_INT8 || (w == pb.Workload_WORKLOAD_VRAM && p.RatesFor(c).MemBytes > 0)
		if required {
			if !errors.Is(err, ErrUnplannable) {
				err = fmt.Errorf("%w: %v", ErrUnplannable, err)
			}
			return err
		}
	}
	if !planned && first != nil {
		if !errors.Is(first, ErrUnplannable) {
			first = fmt.Errorf("%w: %v", ErrUnplannable, first)
		}
		return first
	}
	return nil
}

// VRAMMustHold returns the least fraction of the memory a claim is held
// to (Rates.MemBytes) that a prover must keep to meet the VRAM plan's
// deadline on a device hashing at the planned rate: the plan's fill, the
// blocks over that memory, times VRAMPassingFraction at the plan's
// effective slack (deadline over anticipated, allowance included) and its
// reads per block.
func (p Planner) VRAMMustHold(c *pb.DeviceClaim) (float64, error) {
	pl, err := p.Plan(c, pb.Workload_WORKLOAD_VRAM)
	if err != nil {
		return 0, err
	}
	fill := float64(pl.VRAM.Bytes()) / float64(p.RatesFor(c).MemBytes)
	slack := float64(pl.Deadline) / float64(pl.Anticipated)
	readsPerBlock := float64(pl.VRAM.Reads) / float64(pl.VRAM.Blocks)
	return fill * vramPassingFraction(slack, float64(pl.VRAM.Rounds), readsPerBlock), nil
}

// DefaultLLMLinks is the fewest decode links each verifier of an llm
// challenge checks (or every link, when the decode is shorter): the
// planner checks every link where the opening and the verifier's work
// stay within the limits. A batched guess wrong at one link of T escapes
// with probability 1 − links/T.
const DefaultLLMLinks = 16

// planLLM sizes an llm task for rates r: the planner's model, a prompt
// four times the decode (at most MaxLLMPrompt), the decode the shortest
// that takes Target at r (LLMAnticipated), at most the model's Decode
// (0: MaxLLMDecode) and within what validators let a verifier open and
// check with LLMLinks links (llmChecksBound); stage checks Openings; then
// as many links as fit, up to every one.
func (p Planner) planLLM(pl *Plan, r Rates) error {
	if r.LLMInt8OPS <= 0 {
		return fmt.Errorf("no int8 rate")
	}
	model := p.LLM
	if model.Dim == 0 {
		model = llm.DevnetConfig
		model.Prompt, model.Decode = 0, 0
	}
	maxDecode := min(cmp.Or(model.Decode, MaxLLMDecode), MaxLLMDecode)
	maxPrompt := min(cmp.Or(model.Prompt, MaxLLMPrompt), MaxLLMPrompt)
	minLinks := cmp.Or(p.LLMLinks, DefaultLLMLinks)
	task := func(t int) llm.Config {
		c := model
		c.Decode, c.Prompt = t, min(4*t, maxPrompt)
		return c
	}
	fits := func(c llm.Config, links int) bool {
		macs, bytes := llmChecksBound(c, min(p.Openings, c.Positions()*c.Layers), links)
		return macs <= p.Limits.MaxVerifyWork && bytes <= float64(p.Limits.MaxOpening)/2
	}
	t := 1
	for t < maxDecode && fits(task(t+1), min(minLinks, t+1)) && LLMAnticipated(task(t), r.LLMInt8OPS, r.LLMBytesPerSec) < p.Target {
		t++
	}
	pl.LLM = task(t)
	pl.Anticipated = LLMAnticipated(pl.LLM, r.LLMInt8OPS, r.LLMBytesPerSec)
	if pl.Anticipated < p.Target/2 {
		return fmt.Errorf("the longest task of the model (%d + %d positions) takes %v, under half the %v target", pl.LLM.Prompt, pl.LLM.Decode, pl.Anticipated, p.Target)
	}
	pl.LLMLinks = min(minLinks, t)
	for pl.LLMLinks < t && fits(pl.LLM, pl.LLMLinks+1) {
		pl.LLMLinks++
	}
	pl.Openings = min(p.Openings, pl.LLM.Positions()*pl.LLM.Layers)
	macs, _ := llmChecksBound(pl.LLM, pl.Openings, pl.LLMLinks)
	pl.VerifierFraction = macs / llm.MACs(pl.LLM)
	return nil
}

// Apply writes the plan into a challenge. An llm challenge still needs
// its epoch's weight seed (SetLLMWeights).
func (pl Plan) Apply(ch *pb.Challenge) {
	if pl.Workload == pb.Workload_WORKLOAD_LLM {
		ch.Llm = LLMShapeOf(pl.LLM, pl.LLMLinks, gpu.Seed{})
		ch.Llm.WeightSeed = nil
	}
	ch.Workload = pl.Workload
	ch.N, ch.K, ch.M = uint32(pl.Shape.N), uint32(pl.Shape.K), uint32(pl.Shape.M)
	ch.VramLanes, ch.VramLaneBlocks = uint32(pl.VRAM.Lanes), uint32(pl.VRAM.Blocks)
	ch.VramRounds, ch.VramReads = uint32(pl.VRAM.Rounds), uint32(pl.VRAM.Reads)
	ch.Openings = uint32(pl.Openings)
	ch.DeadlineMs = uint32(max(pl.Deadline.Milliseconds(), 1))
}

// VerifierMACs returns the multiply-adds one verifier spends on a GEMM
// challenge of shape s with the given openings, its check digest
// included: with c = CheckedColumns(openings, m) checked columns and d =
// min(CheckColumns, m) digest columns, for int8 (Freivalds) B_J·r, c·k,
// plus k + c per opened row, plus d·k; for bf16 c·k per opened row plus
// d·k. An audit of the challenge's check digests costs d·k per digest.
// Generating B's c columns costs k Philox blocks each besides.
func VerifierMACs(w pb.Workload, s gpu.Shape, openings int) float64 {
	k := float64(s.K)
	c, d := float64(CheckedColumns(openings, s.M)), float64(min(CheckColumns, s.M))
	if w == pb.Workload_WORKLOAD_GEMM_BF16 {
		return float64(openings)*c*k + d*k
	}
	return c*k + float64(openings)*(k+c) + d*k
}

// minRowsForVerifier returns the least n for which VerifierMACs ≤ frac of
// the prover's n·k·m.
func minRowsForVerifier(w pb.Workload, k, m, openings int, frac float64) int {
	if frac <= 0 {
		return 0
	}
	v := VerifierMACs(w, gpu.Shape{N: 1, K: k, M: m}, openings)
	return int(math.Ceil(v / (frac * float64(k) * float64(m))))
}
