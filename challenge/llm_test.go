package challenge

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/llm"
	"github.com/poai-network/poai/gpu/llm/llmcheat"
)

// llmProver is a way of answering an llm task: the honest one
// (llm.RunTrace) or a labelled cheat. Each returns the trace it commits
// to and the tokens it claims, and the multiply-adds it spent.
type llmProver struct {
	name  string
	prove func(w *llm.Weights, prompt []int) (*llm.Trace, []int, float64)
}

func honestLLM() llmProver {
	return llmProver{"honest", func(w *llm.Weights, prompt []int) (*llm.Trace, []int, float64) {
		res, tr, err := llm.RunTrace(context.Background(), w, prompt)
		if err != nil {
			panic(err)
		}
		return tr, res.Tokens, llm.MACs(w.Config)
	}}
}

// The labelled llm cheats of issue 20, each a separate prover.
func llmCheats(cfg llm.Config) []llmProver {
	return []llmProver{
		{"lazy-llm (half the layers)", llmcheat.Cheat{Layers: cfg.Layers / 2}.Forward},
		{"cheap-attention (last 8 positions)", llmcheat.Cheat{Layers: cfg.Layers, Window: 8}.Forward},
		{"short-decode (half the tokens, padded)", llmcheat.Cheat{Layers: cfg.Layers, StopAfter: cfg.Decode / 2}.Forward},
		{"batched-guess (token 0, repeated)", llmcheat.Cheat{Layers: cfg.Layers, Guess: func(int, int) int { return 0 }}.Forward},
		{"batched-guess (right but for one token; its oracle not counted)", func(w *llm.Weights, prompt []int) (*llm.Trace, []int, float64) {
			res, err := llm.Run(context.Background(), w, prompt) // the oracle a lucky guesser would be
			if err != nil {
				panic(err)
			}
			guess := func(i, _ int) int {
				if i == cfg.Decode/2 {
					return (res.Tokens[i] + 1) % cfg.Vocab
				}
				return res.Tokens[i]
			}
			return llmcheat.Cheat{Layers: cfg.Layers, Guess: guess}.Forward(w, prompt)
		}},
		{"replay-llm (another prompt's answer)", func(w *llm.Weights, prompt []int) (*llm.Trace, []int, float64) {
			other := llm.PromptTokens(w.Config, gpu.Seed(sha256.Sum256([]byte("an earlier challenge"))))
			res, tr, err := llm.RunTrace(context.Background(), w, other)
			if err != nil {
				panic(err)
			}
			return tr, res.Tokens, 0 // computed once, replayed since
		}},
	}
}

// llmBed is a model, a verifier's projection and a prompt.
type llmBed struct {
	cfg    llm.Config
	w      *llm.Weights
	p      *llm.Projection
	prompt []int
}

func newLLMBed(t testing.TB, cfg llm.Config) *llmBed {
	t.Helper()
	w, err := llm.NewWeights(cfg, gpu.Seed(sha256.Sum256([]byte("weights"))))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6)) // a verifier draws from crypto/rand
	vec := func(n int) []uint64 {
		r := make([]uint64, n)
		for i := range r {
			r[i] = rng.Uint64N(gpu.FreivaldsPrime)
		}
		return r
	}
	p, err := llm.Project(w, vec(cfg.Dim), vec(cfg.FFN), vec(cfg.Vocab), vec(1)[0], vec(1)[0])
	if err != nil {
		t.Fatal(err)
	}
	return &llmBed{cfg: cfg, w: w, p: p, prompt: llm.PromptTokens(cfg, gpu.Seed(sha256.Sum256([]byte("prompt"))))}
}

// check commits to a prover's answer, samples with secret and verifies.
func (b *llmBed) check(t testing.TB, pr llmProver, secret []byte, stages, links int) (int, error) {
	t.Helper()
	tr, tokens, _ := pr.prove(b.w, b.prompt)
	a, err := NewLLMAnswer(b.cfg, tr, tokens)
	if err != nil {
		t.Fatal(err)
	}
	checks, err := SampleLLMChecks(b.cfg, a.Root(), []byte("nonce"), secret, stages, links)
	if err != nil {
		t.Fatal(err)
	}
	op, err := a.Open(checks)
	if err != nil {
		t.Fatal(err)
	}
	return op.Bytes(), VerifyLLM(b.w, b.p, b.prompt, a.Root(), a.Tokens, checks, op)
}

// LLMStageChecks and LLMLinkChecks are the checks these tests draw per
// challenge at the devnet shape.
const (
	testLLMStageChecks = 48
	testLLMLinkChecks  = 16
)

// TestLLMHonestPasses: the honest answer passes every check drawn, for
// many secrets, and its opening's size is logged.
func TestLLMHonestPasses(t *testing.T) {
	b := newLLMBed(t, llm.DevnetConfig)
	for i := range 10 {
		size, err := b.check(t, honestLLM(), []byte(fmt.Sprint("secret ", i)), testLLMStageChecks, testLLMLinkChecks)
		if err != nil {
			t.Fatalf("secret %d: %v", i, err)
		}
		if i == 0 {
			t.Logf("opening of %d stage and %d link checks: %d bytes", testLLMStageChecks, testLLMLinkChecks, size)
		}
	}
}

// TestLLMCheatsCaught: each labelled cheat fails the checks of every one
// of 20 challenges (secrets), and each saves the work the log shows.
func TestLLMCheatsCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("proves 140 challenges of the devnet shape (about 8 s, a minute under the race detector)")
	}
	b := newLLMBed(t, llm.DevnetConfig)
	for _, pr := range llmCheats(b.cfg) {
		_, _, macs := pr.prove(b.w, b.prompt)
		caught := 0
		for i := range 20 {
			_, err := b.check(t, pr, []byte(fmt.Sprint("secret ", i)), testLLMStageChecks, testLLMLinkChecks)
			if errors.Is(err, ErrLLMAnswer) {
				caught++
			} else if err != nil {
				t.Fatalf("%s: %v", pr.name, err)
			}
		}
		t.Logf("%-50s caught %2d of 20, %.0f %% of the honest work", pr.name, caught, 100*macs/llm.MACs(b.cfg))
		if caught < 20 {
			t.Errorf("%s escaped %d of 20 challenges", pr.name, 20-caught)
		}
	}
}

// TestLLMLinksNeeded: the batched guess is wrong only at decode links:
// with stage checks alone it passes.
func TestLLMLinksNeeded(t *testing.T) {
	b := newLLMBed(t, llm.DevnetConfig)
	guess := llmCheats(b.cfg)[3]
	passed := 0
	for i := range 10 {
		if _, err := b.check(t, guess, []byte(fmt.Sprint("secret ", i)), testLLMStageChecks, 0); err == nil {
			passed++
		}
	}
	if passed < 10 {
		t.Fatalf("the batched guess failed %d of 10 challenges on stage checks alone: links are not what catches it", 10-passed)
	}
}

// TestLLMOpeningMustCoverChecks: a leaf left out, or a proof under
// another root, fails.
func TestLLMOpeningMustCoverChecks(t *testing.T) {
	b := newLLMBed(t, llm.DevnetConfig)
	tr, tokens, _ := honestLLM().prove(b.w, b.prompt)
	a, err := NewLLMAnswer(b.cfg, tr, tokens)
	if err != nil {
		t.Fatal(err)
	}
	checks, err := SampleLLMChecks(b.cfg, a.Root(), []byte("n"), []byte("s"), 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	op, err := a.Open(checks)
	if err != nil {
		t.Fatal(err)
	}
	short := &LLMOpening{Leaves: op.Leaves[1:], Proof: op.Proof}
	if err := VerifyLLM(b.w, b.p, b.prompt, a.Root(), a.Tokens, checks, short); !errors.Is(err, ErrMalformed) {
		t.Errorf("a leaf missing: %v", err)
	}
	changed := &LLMOpening{Leaves: slices.Clone(op.Leaves), Proof: op.Proof}
	changed.Leaves[2].Value = slices.Clone(changed.Leaves[2].Value)
	changed.Leaves[2].Value[0] ^= 1
	if err := VerifyLLM(b.w, b.p, b.prompt, a.Root(), a.Tokens, checks, changed); !errors.Is(err, ErrLLMAnswer) {
		t.Errorf("a changed leaf: %v", err)
	}
	var other merkle.Hash
	other[0] = 1
	if err := VerifyLLM(b.w, b.p, b.prompt, other, a.Tokens, checks, op); !errors.Is(err, ErrLLMAnswer) {
		t.Errorf("another root: %v", err)
	}
	if err := VerifyLLM(b.w, b.p, b.prompt, a.Root(), slices.Repeat([]int{1}, b.cfg.Decode), checks, op); !errors.Is(err, ErrLLMAnswer) {
		t.Errorf("other tokens claimed: %v", err)
	}
}

// TestLLMAnticipated: decode is memory-bound on a catalog GPU at small
// batch, compute-bound on a CPU; figures logged for the devnet shape and
// for a 7B-like shape on an H100's catalog figures.
func TestLLMAnticipated(t *testing.T) {
	cfg := llm.DevnetConfig
	cpu := LLMAnticipated(cfg, 2*1.7e9, 0) // the reference's 1.7 GMAC/s on one core
	if got := 2 * llm.MACs(cfg) / (2 * 1.7e9); cpu.Seconds() < 0.99*got || cpu.Seconds() > 1.01*got {
		t.Fatalf("compute-bound time %v, want MACs/rate = %.3f s", cpu, got)
	}
	big := llm.Config{Vocab: 32768, Dim: 4096, Heads: 32, Layers: 32, FFN: 16384, Prompt: 512, Decode: 64}
	const h100Int8, h100BW = 1979e12, 3.35e12
	gpuTime := LLMAnticipated(big, h100Int8, h100BW)
	computeOnly := LLMAnticipated(big, h100Int8, 0)
	t.Logf("devnet shape on one core: %v; 7B-like shape on an H100 (peak int8, 3.35 TB/s): %v, of which compute alone %v", cpu, gpuTime, computeOnly)
	if gpuTime < 5*computeOnly {
		t.Fatalf("decoding 64 tokens of a 7B-like model is not memory-bound: %v against %v compute", gpuTime, computeOnly)
	}
}

// TestLLMWeightSeed: one model per LLMWeightEpochs epochs of a network,
// another for the next span or another genesis.
func TestLLMWeightSeed(t *testing.T) {
	a, b := LLMWeightSeed(1700000000, 0), LLMWeightSeed(1700000000, LLMWeightEpochs-1)
	if a != b {
		t.Fatal("epochs of one span have different models")
	}
	if a == LLMWeightSeed(1700000000, LLMWeightEpochs) || a == LLMWeightSeed(1700000001, 0) {
		t.Fatal("another span or genesis has the same model")
	}
}
