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

// cheat describes a cheating forward pass (forward).
type cheat struct {
	// layers run per position (the rest pass the stream through): a
	// smaller model.
	layers int
	// window > 0: attention over the last window positions only.
	window int
	// guess, when set, gives the decode's input tokens in advance (a
	// guessed decode run as one batched prefill); the logits are still
	// computed, the tokens claimed are the guesses.
	guess func(i int) int
	// stopAfter > 0: only this many tokens are decoded; the rest of the
	// positions are left zero and the tokens padded with the last one.
	stopAfter int
}

// forward runs w on prompt as c says, recording a trace as
// llm.RunTrace would, and returns the multiply-adds it spent.
func (c cheat) forward(w *llm.Weights, prompt []int) (*llm.Trace, []int, float64) {
	cfg := w.Config
	d, hd, f := cfg.Dim, cfg.HeadDim(), cfg.FFN
	shD, shF, shA := llm.Shift(d), llm.Shift(f), llm.AttentionShift(hd)
	keys, vals := make([][][]int8, cfg.Layers), make([][][]int8, cfg.Layers)
	tr := &llm.Trace{}
	var tokens []int
	var macs float64
	tok := 0
	for pos := range cfg.Positions() {
		stages := make([]llm.Stage, cfg.Layers)
		tr.Stages = append(tr.Stages, stages)
		for l := range stages {
			stages[l] = llm.Stage{XIn: make([]int32, d), AccQ: make([]int32, d), AccK: make([]int32, d), AccV: make([]int32, d),
				Att: make([]int8, d), AccO: make([]int32, d), AccUp: make([]int32, f), AccDown: make([]int32, d), XOut: make([]int32, d)}
		}
		if c.stopAfter > 0 && pos >= cfg.Prompt+c.stopAfter-1 {
			continue // stopped: nothing computed
		}
		switch {
		case pos < cfg.Prompt:
			tok = prompt[pos]
		case c.guess != nil:
			tok = c.guess(pos - cfg.Prompt)
		}
		x := make([]int32, d)
		for i := range d {
			x[i] = int32(w.Embed[tok*d+i]) + int32(w.Pos[pos*d+i])
		}
		for l := range cfg.Layers {
			st := &stages[l]
			copy(st.XIn, x)
			if l >= c.layers {
				copy(st.XOut, x) // a layer skipped
				continue
			}
			L := w.Layers[l]
			a := make([]int8, d)
			llm.LayerNorm(a, x)
			llm.GEMV(st.AccQ, a, L.Q)
			llm.GEMV(st.AccK, a, L.K)
			llm.GEMV(st.AccV, a, L.V)
			macs += 3 * float64(d*d)
			k, v := st.KV(cfg)
			keys[l], vals[l] = append(keys[l], k), append(vals[l], v)
			q := make([]int8, d)
			for i, acc := range st.AccQ {
				q[i] = llm.Requant(int64(acc), shD)
			}
			from := 0
			if c.window > 0 {
				from = max(0, pos+1-c.window)
			}
			for h := range cfg.Heads {
				lo := h * hd
				n := pos + 1 - from
				scores, probs := make([]int64, n), make([]int64, n)
				for j := range n {
					for e := range hd {
						scores[j] += int64(q[lo+e]) * int64(keys[l][from+j][lo+e])
					}
				}
				llm.Softmax(probs, scores, shA)
				for e := range hd {
					var o int64
					for j := range n {
						o += probs[j] * int64(vals[l][from+j][lo+e])
					}
					st.Att[lo+e] = llm.Requant(o, llm.ProbBits)
				}
				macs += 2 * float64(n*hd)
			}
			llm.GEMV(st.AccO, st.Att, L.O)
			for i := range d {
				x[i] += int32(llm.Requant(int64(st.AccO[i]), shD))
			}
			llm.LayerNorm(a, x)
			llm.GEMV(st.AccUp, a, L.Up)
			u := make([]int8, f)
			for i, acc := range st.AccUp {
				u[i] = llm.GELU(llm.Requant(int64(acc), shD))
			}
			llm.GEMV(st.AccDown, u, L.Down)
			for i := range d {
				x[i] += int32(llm.Requant(int64(st.AccDown[i]), shF))
			}
			copy(st.XOut, x)
			macs += float64(d*d + 2*d*f)
		}
		if pos >= cfg.Prompt-1 {
			a := make([]int8, d)
			llm.LayerNorm(a, x)
			logits := make([]int32, cfg.Vocab)
			llm.GEMV(logits, a, w.Vocab)
			macs += float64(d * cfg.Vocab)
			next := llm.Argmax(logits)
			if c.guess != nil {
				next = c.guess(pos - (cfg.Prompt - 1))
			}
			tr.Logits = append(tr.Logits, logits)
			tokens = append(tokens, next)
			tok = next
		}
	}
	for len(tokens) < cfg.Decode { // padded
		tr.Logits = append(tr.Logits, make([]int32, cfg.Vocab))
		tokens = append(tokens, tokens[len(tokens)-1])
	}
	return tr, tokens, macs
}

// The labelled llm cheats of issue 20, each a separate prover.
func llmCheats(cfg llm.Config) []llmProver {
	return []llmProver{
		{"lazy-llm (half the layers)", cheat{layers: cfg.Layers / 2}.forward},
		{"cheap-attention (last 8 positions)", cheat{layers: cfg.Layers, window: 8}.forward},
		{"short-decode (half the tokens, padded)", cheat{layers: cfg.Layers, stopAfter: cfg.Decode / 2}.forward},
		{"batched-guess (token 0, repeated)", cheat{layers: cfg.Layers, guess: func(int) int { return 0 }}.forward},
		{"batched-guess (right but for one token; its oracle not counted)", func(w *llm.Weights, prompt []int) (*llm.Trace, []int, float64) {
			res, err := llm.Run(context.Background(), w, prompt) // the oracle a lucky guesser would be
			if err != nil {
				panic(err)
			}
			guess := func(i int) int {
				if i == cfg.Decode/2 {
					return (res.Tokens[i] + 1) % cfg.Vocab
				}
				return res.Tokens[i]
			}
			return cheat{layers: cfg.Layers, guess: guess}.forward(w, prompt)
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
	p, err := llm.Project(w, vec(cfg.Dim), vec(cfg.FFN), vec(cfg.Vocab))
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
