package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"text/tabwriter"
	"time"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/llm"
)

// llmBenchResult is `poai bench --workload llm`'s report.
type llmBenchResult struct {
	Config llm.Config `json:"config"`
	// ProveMS is the best of the runs: the model on the prompt and the
	// commitment to its trace; TokensPerSec counts the positions run
	// (prompt and decoded tokens) per second.
	ProveMS      float64 `json:"prove_ms"`
	TokensPerSec float64 `json:"tokens_per_s"`
	GMACPerSec   float64 `json:"gmac_per_s"`
	ProverMACs   float64 `json:"prover_macs"`
	// StageChecks and LinkChecks are the checks drawn; VerifyMS their
	// time on one core, VerifierMACs their multiply-adds.
	StageChecks  int     `json:"stage_checks"`
	LinkChecks   int     `json:"link_checks"`
	VerifyMS     float64 `json:"verify_ms"`
	VerifierMACs float64 `json:"verifier_macs"`
	// VerifierWork breaks VerifierMACs down by kind, and counts the
	// distinct stages verified and the (stage, head) attentions
	// recomputed.
	VerifierWork challenge.LLMVerifierWork `json:"verifier_work"`
	// CheckDigestMACs is what a verifier spends per challenge on the
	// check digests (challenge.CheckDigests: layer 0 at the first
	// challenge.LLMCheckPositions prompt positions, for every verifier's
	// digest), besides the checks; CheckDigestWork is it over the
	// prover's multiply-adds.
	CheckDigestMACs float64 `json:"check_digest_macs"`
	CheckDigestWork float64 `json:"check_digest_work_fraction"`
	// VerifyWork and VerifyTime are the verifier's share of the
	// prover's multiply-adds and time.
	VerifyWork float64 `json:"verify_work_fraction"`
	VerifyTime float64 `json:"verify_time_fraction"`
	// ProjectionMS and ProjectionMACs are the verifier's projection of
	// the weights, once per weight seed and shared by every challenge on
	// the model; ProjectionWork is it over one task's multiply-adds.
	ProjectionMS   float64 `json:"projection_ms"`
	ProjectionMACs float64 `json:"projection_macs"`
	ProjectionWork float64 `json:"projection_work_fraction"`
	OpeningBytes   int     `json:"opening_bytes"`
	Verdict        string  `json:"verdict"`
}

// benchLLM proves the llm workload at cfg on one core (the reference
// backend), keeps the best of reps runs, and verifies one answer with
// stages and links checks as a verifier does.
func benchLLM(ctx context.Context, out io.Writer, cfg llm.Config, reps, stages, links int, jsonOut bool) error {
	seed := func() (s gpu.Seed) {
		rand.Read(s[:])
		return s
	}
	w, err := llm.NewWeights(cfg, seed())
	if err != nil {
		return err
	}
	prompt := llm.PromptTokens(cfg, seed())
	var (
		answer *challenge.LLMAnswer
		best   time.Duration
	)
	for range max(reps, 1) {
		start := time.Now()
		res, tr, err := llm.RunTrace(ctx, w, prompt)
		if err != nil {
			return err
		}
		if answer, err = challenge.NewLLMAnswer(cfg, tr, res.Tokens); err != nil {
			return err
		}
		if d := time.Since(start); best == 0 || d < best {
			best = d
		}
	}
	rng := mrand.New(mrand.NewChaCha8(seed())) // a verifier's private vectors, from crypto/rand
	vec := func(n int) []uint64 {
		r := make([]uint64, n)
		for i := range r {
			r[i] = rng.Uint64N(gpu.FreivaldsPrime)
		}
		return r
	}
	pstart := time.Now()
	proj, err := llm.Project(w, vec(cfg.Dim), vec(cfg.FFN), vec(cfg.Vocab), vec(1)[0], vec(1)[0])
	if err != nil {
		return err
	}
	ptime := time.Since(pstart)
	secret := seed()
	checks, err := challenge.SampleLLMChecks(cfg, answer.Root(), []byte("bench"), secret[:], stages, links)
	if err != nil {
		return err
	}
	op, err := answer.Open(checks)
	if err != nil {
		return err
	}
	vstart := time.Now()
	verr := challenge.VerifyLLM(w, proj, prompt, answer.Root(), answer.Tokens, checks, op)
	vtime := time.Since(vstart)
	verdict := "pass"
	if verr != nil {
		verdict = verr.Error()
	}
	nStages, nLinks := 0, 0
	for _, k := range checks {
		if k.Link >= 0 {
			nLinks++
		} else {
			nStages++
		}
	}
	macs, vwork := llm.MACs(cfg), challenge.LLMVerifierCost(cfg, checks)
	vmacs := vwork.Total()
	digest := cfg
	digest.Layers, digest.Prompt, digest.Decode = 1, min(cfg.Prompt, challenge.LLMCheckPositions), 0
	dmacs := llm.MACs(digest)
	r := llmBenchResult{Config: cfg, ProveMS: ms(best), TokensPerSec: float64(cfg.Positions()) / best.Seconds(),
		GMACPerSec: macs / best.Seconds() / 1e9, ProverMACs: macs,
		StageChecks: nStages, LinkChecks: nLinks, VerifyMS: ms(vtime), VerifierMACs: vmacs, VerifierWork: vwork,
		CheckDigestMACs: dmacs, CheckDigestWork: dmacs / macs,
		VerifyWork: vmacs / macs, VerifyTime: vtime.Seconds() / best.Seconds(),
		ProjectionMS: ms(ptime), ProjectionMACs: llm.WeightMACs(cfg), ProjectionWork: llm.WeightMACs(cfg) / macs,
		OpeningBytes: op.Bytes(), Verdict: verdict}
	if jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	c := r.Config
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "model\tV %d, D %d, %d heads, %d layers, F %d; prompt %d, decode %d\n", c.Vocab, c.Dim, c.Heads, c.Layers, c.FFN, c.Prompt, c.Decode)
	fmt.Fprintf(tw, "prover (one core)\t%.1f ms, %.0f tokens/s, %.2f GMAC/s (%.3g MACs)\n", r.ProveMS, r.TokensPerSec, r.GMACPerSec, r.ProverMACs)
	fmt.Fprintf(tw, "verifier, per challenge\t%.2f ms, %.3g MACs for %d stage and %d link checks; opening %d bytes\n", r.VerifyMS, r.VerifierMACs, r.StageChecks, r.LinkChecks, r.OpeningBytes)
	vw := r.VerifierWork
	fmt.Fprintf(tw, "  by kind\t%d stages verified once each, %d (stage, head) attentions: Freivalds %.3g, attention %.3g, logits %.3g MACs\n", vw.Stages, vw.Heads, vw.Freivalds, vw.Attention, vw.Logits)
	fmt.Fprintf(tw, "verifier/prover\t%.4f in MACs, %.4f in time\n", r.VerifyWork, r.VerifyTime)
	fmt.Fprintf(tw, "check digests, per challenge\t%.3g MACs (%.4f of the prover's): layer 0 at the first %d prompt positions, a verifier's proof it computed; not in the ratio above\n", r.CheckDigestMACs, r.CheckDigestWork, digest.Prompt)
	fmt.Fprintf(tw, "projection, per weight seed\t%.1f ms, %.3g MACs (%.3f of one task), shared by every challenge on the model\n", r.ProjectionMS, r.ProjectionMACs, r.ProjectionWork)
	fmt.Fprintf(tw, "verdict\t%s\n", r.Verdict)
	if err := tw.Flush(); err != nil {
		return err
	}
	if verr != nil {
		return fmt.Errorf("the honest answer failed its checks: %w", verr)
	}
	return nil
}
