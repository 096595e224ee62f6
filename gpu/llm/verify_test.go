package llm

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/poai-network/poai/gpu"
)

// fixture is an honest task's trace with a verifier's projection.
type fixture struct {
	cfg    Config
	w      *Weights
	p      *Projection
	res    *Result
	tr     *Trace
	prompt []int
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	w, err := NewWeights(cfg, seed(7))
	if err != nil {
		t.Fatal(err)
	}
	prompt := PromptTokens(cfg, seed(8))
	res, tr, err := RunTrace(context.Background(), w, prompt)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12)) // a verifier draws from crypto/rand; fixed here
	vec := func(n int) []uint64 {
		r := make([]uint64, n)
		for i := range r {
			r[i] = rng.Uint64N(gpu.FreivaldsPrime)
		}
		return r
	}
	p, err := Project(w, vec(cfg.Dim), vec(cfg.FFN), vec(cfg.Vocab), vec(1)[0], vec(1)[0])
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{cfg: cfg, w: w, p: p, res: res, tr: tr, prompt: prompt}
}

// kv returns layer l's key and value rows of positions before pos, from
// the trace.
func (f *fixture) kv(pos, l int) (keys, values [][]int8) {
	for j := range pos {
		k, v := f.tr.Stages[j][l].KV(f.cfg)
		keys, values = append(keys, k), append(values, v)
	}
	return keys, values
}

func allHeads(cfg Config) []int {
	h := make([]int, cfg.Heads)
	for i := range h {
		h[i] = i
	}
	return h
}

// The honest trace checks everywhere: every stage (every head), every
// input embedding, every layer-to-layer link and every token.
func TestVerifyHonestTrace(t *testing.T) {
	f := newFixture(t, DevnetConfig)
	cfg := f.cfg
	if len(f.tr.Stages) != cfg.Positions() || len(f.tr.Logits) != cfg.Decode {
		t.Fatalf("trace of %d positions and %d logits", len(f.tr.Stages), len(f.tr.Logits))
	}
	tokens := append(append([]int(nil), f.prompt...), f.res.Tokens...)
	for pos, stages := range f.tr.Stages {
		if err := VerifyInput(f.w, pos, tokens[pos], stages[0].XIn); err != nil {
			t.Fatal(err)
		}
		for l := range stages {
			keys, values := f.kv(pos, l)
			if err := VerifyStage(f.w, f.p, pos, l, &stages[l], keys, values, allHeads(cfg)); err != nil {
				t.Fatal(err)
			}
			if l > 0 && !slices.Equal(stages[l].XIn, stages[l-1].XOut) {
				t.Fatalf("position %d: layer %d's input is not layer %d's output", pos, l, l-1)
			}
		}
		if pos >= cfg.Prompt-1 {
			i := pos - (cfg.Prompt - 1)
			if err := VerifyToken(f.w, f.p, stages[cfg.Layers-1].XOut, f.tr.Logits[i], tokens[pos+1]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Any one value changed anywhere in a stage fails it.
func TestVerifyCatchesTampering(t *testing.T) {
	f := newFixture(t, DevnetConfig)
	pos, l := 40, 2
	keys, values := f.kv(pos, l)
	honest := f.tr.Stages[pos][l]
	fields := map[string]func(*Stage){
		"x_in":  func(s *Stage) { s.XIn[5]++ },
		"acc_q": func(s *Stage) { s.AccQ[7] += 1 << 12 },
		"acc_k": func(s *Stage) { s.AccK[9]++ },
		"acc_v": func(s *Stage) { s.AccV[100]-- },
		"att":   func(s *Stage) { s.Att[3]++ },
		"acc_o": func(s *Stage) { s.AccO[0]++ },
		"up":    func(s *Stage) { s.AccUp[300]++ },
		"down":  func(s *Stage) { s.AccDown[17]-- },
		"x_out": func(s *Stage) { s.XOut[127]++ },
		"huge":  func(s *Stage) { s.XIn[1] = MaxStream },
	}
	for name, change := range fields {
		st := clone(honest)
		change(&st)
		if err := VerifyStage(f.w, f.p, pos, l, &st, keys, values, allHeads(f.cfg)); !errors.Is(err, ErrStage) {
			t.Errorf("%s changed: %v", name, err)
		}
	}
	// Errors that cancel under one shared vector (AccQ·r + AccK·r + AccV·r
	// unchanged) fail the mixed check of q, k and v; no attention is
	// recomputed here, so Freivalds alone must see them.
	for name, change := range map[string]func(*Stage){
		"q up, k down": func(s *Stage) { s.AccQ[11]++; s.AccK[11]-- },
		"k up, v down": func(s *Stage) { s.AccK[12] += 3; s.AccV[12] -= 3 },
		"q, k, v":      func(s *Stage) { s.AccQ[5] += 2; s.AccK[5]--; s.AccV[5]-- },
	} {
		st := clone(honest)
		change(&st)
		if err := VerifyStage(f.w, f.p, pos, l, &st, nil, nil, nil); !errors.Is(err, ErrStage) || !strings.Contains(err.Error(), "q, k and v") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A wrong key row of an earlier position changes attention.
	keys[3] = append([]int8(nil), keys[3]...)
	keys[3][0] ^= 0x40
	st := clone(honest)
	if err := VerifyStage(f.w, f.p, pos, l, &st, keys, values, allHeads(f.cfg)); !errors.Is(err, ErrStage) {
		t.Errorf("a changed key row: %v", err)
	}
	// A token that is not the logits' argmax.
	last := f.tr.Stages[f.cfg.Prompt-1][f.cfg.Layers-1].XOut
	if err := VerifyToken(f.w, f.p, last, f.tr.Logits[0], (f.res.Tokens[0]+1)%f.cfg.Vocab); !errors.Is(err, ErrStage) {
		t.Errorf("a wrong next token: %v", err)
	}
}

func clone(s Stage) Stage {
	c := func(v []int32) []int32 { return append([]int32(nil), v...) }
	return Stage{XIn: c(s.XIn), AccQ: c(s.AccQ), AccK: c(s.AccK), AccV: c(s.AccV), Att: append([]int8(nil), s.Att...),
		AccO: c(s.AccO), AccUp: c(s.AccUp), AccDown: c(s.AccDown), XOut: c(s.XOut)}
}

// A layer skipped (its output the input: a cheaper, shallower model)
// fails the stage.
func TestVerifyCatchesSkippedLayer(t *testing.T) {
	f := newFixture(t, DevnetConfig)
	pos, l := 20, 1
	st := clone(f.tr.Stages[pos][l])
	copy(st.XOut, st.XIn)
	keys, values := f.kv(pos, l)
	if err := VerifyStage(f.w, f.p, pos, l, &st, keys, values, nil); !errors.Is(err, ErrStage) {
		t.Fatalf("skipped layer: %v", err)
	}
}

// Windowed attention (the last 8 positions only) changes the heads'
// outputs: checked on one head drawn at random, it is caught in most
// stages from position 16 on.
func TestVerifyCatchesWindowedAttention(t *testing.T) {
	f := newFixture(t, DevnetConfig)
	cfg := f.cfg
	d, hd := cfg.Dim, cfg.HeadDim()
	const window = 8
	var stages, headsDiffer, headsTotal int
	for pos := 16; pos < cfg.Positions(); pos++ {
		for l := range cfg.Layers {
			st := clone(f.tr.Stages[pos][l])
			keys, values := f.kv(pos, l)
			k, v := st.KV(cfg)
			keys, values = append(keys, k), append(values, v)
			q := make([]int8, d)
			for i, a := range st.AccQ {
				q[i] = Requant(int64(a), Shift(d))
			}
			from := pos + 1 - window
			differs := make([]bool, cfg.Heads)
			for h := range cfg.Heads {
				lo := h * hd
				scores, probs := make([]int64, window), make([]int64, window)
				for j := range window {
					for e := range hd {
						scores[j] += int64(q[lo+e]) * int64(keys[from+j][lo+e])
					}
				}
				Softmax(probs, scores, AttentionShift(hd))
				for e := range hd {
					var o int64
					for j := range window {
						o += probs[j] * int64(values[from+j][lo+e])
					}
					if a := Requant(o, ProbBits); a != st.Att[lo+e] {
						differs[h] = true
						st.Att[lo+e] = a
					}
				}
				headsTotal++
				if differs[h] {
					headsDiffer++
				}
			}
			stages++
			// The rest of the stage follows honestly from the windowed
			// attention, so only attention is wrong: a check of head h
			// fails exactly when h's output changed.
			restage(f.w, l, &st)
			if err := VerifyStage(f.w, f.p, pos, l, &st, keys[:pos], values[:pos], nil); err != nil {
				t.Fatalf("position %d layer %d: the restaged products do not check: %v", pos, l, err)
			}
			for h := range cfg.Heads {
				err := VerifyStage(f.w, f.p, pos, l, &st, keys[:pos], values[:pos], []int{h})
				if caught := errors.Is(err, ErrStage); caught != differs[h] {
					t.Fatalf("position %d layer %d head %d: caught %v, output changed %v (%v)", pos, l, h, caught, differs[h], err)
				}
			}
		}
	}
	t.Logf("windowed attention (last %d positions): %d of %d heads give other outputs, over %d stages", window, headsDiffer, headsTotal, stages)
	if headsDiffer*100 < 95*headsTotal {
		t.Fatalf("windowed attention changes only %d of %d heads: a one-head check would miss it too often", headsDiffer, headsTotal)
	}
}

// The verifier's share of the prover's work, in multiply-adds, at the
// devnet shape: the projection once per weight seed, then a stage check
// with one head per opening.
func TestVerifierCost(t *testing.T) {
	cfg := DevnetConfig
	const openings = 64
	var check float64
	for i := range openings {
		check += StageVerifierMACs(cfg, i*cfg.Positions()/openings, 1)
	}
	prover := MACs(cfg)
	t.Logf("prover %.3g MACs; verifier %.3g MACs for %d stage openings (ratio %.4f), projection %.3g MACs once per weight seed (%.2f tasks' worth)",
		prover, check, openings, check/prover, WeightMACs(cfg), WeightMACs(cfg)/prover)
	if check/prover > 0.01 {
		t.Fatalf("verifier/prover %.4f > 0.01", check/prover)
	}
}

func BenchmarkVerifyStage(b *testing.B) {
	f := newFixture(b, DevnetConfig)
	pos, l := f.cfg.Positions()-1, f.cfg.Layers-1
	keys, values := f.kv(pos, l)
	for b.Loop() {
		if err := VerifyStage(f.w, f.p, pos, l, &f.tr.Stages[pos][l], keys, values, []int{0}); err != nil {
			b.Fatal(err)
		}
	}
}

// restage recomputes, honestly, what follows a stage's attention output:
// AccO, AccUp, AccDown and XOut from st.XIn and st.Att.
func restage(w *Weights, l int, st *Stage) {
	cfg, L := w.Config, w.Layers[l]
	d := cfg.Dim
	GEMV(st.AccO, st.Att, L.O)
	x1 := make([]int32, d)
	for i := range d {
		x1[i] = st.XIn[i] + int32(Requant(int64(st.AccO[i]), Shift(d)))
	}
	a := make([]int8, d)
	LayerNorm(a, x1)
	GEMV(st.AccUp, a, L.Up)
	u := make([]int8, cfg.FFN)
	for i, v := range st.AccUp {
		u[i] = GELU(Requant(int64(v), Shift(d)))
	}
	GEMV(st.AccDown, u, L.Down)
	for i := range d {
		st.XOut[i] = x1[i] + int32(Requant(int64(st.AccDown[i]), Shift(cfg.FFN)))
	}
}
