package challenge

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"testing"

	"github.com/poai-network/poai/gpu/llm"
)

// forcedForward runs the model over prompt followed by tokens (all
// inputs known in advance: one batched prefill), honestly, except that
// the stream leaving layer L-2 at each position in force is replaced by
// force[pos] (that stage's XOut is forged; everything else, including
// layer L-1 computed from the forged stream, is honest).
func forcedForward(w *llm.Weights, prompt, tokens []int, force map[int][]int32) (*llm.Trace, float64) {
	cfg := w.Config
	d, hd, f := cfg.Dim, cfg.HeadDim(), cfg.FFN
	shD, shF, shA := llm.Shift(d), llm.Shift(f), llm.AttentionShift(hd)
	keys, vals := make([][][]int8, cfg.Layers), make([][][]int8, cfg.Layers)
	tr := &llm.Trace{}
	macs := 0.0
	for pos := range cfg.Positions() {
		tok := 0
		if pos < cfg.Prompt {
			tok = prompt[pos]
		} else {
			tok = tokens[pos-cfg.Prompt]
		}
		x := make([]int32, d)
		for i := range d {
			x[i] = int32(w.Embed[tok*d+i]) + int32(w.Pos[pos*d+i])
		}
		stages := make([]llm.Stage, cfg.Layers)
		for l := range cfg.Layers {
			st := llm.Stage{XIn: slices.Clone(x), AccQ: make([]int32, d), AccK: make([]int32, d), AccV: make([]int32, d),
				Att: make([]int8, d), AccO: make([]int32, d), AccUp: make([]int32, f), AccDown: make([]int32, d), XOut: make([]int32, d)}
			L := w.Layers[l]
			a := make([]int8, d)
			llm.LayerNorm(a, x)
			llm.GEMV(st.AccQ, a, L.Q)
			llm.GEMV(st.AccK, a, L.K)
			llm.GEMV(st.AccV, a, L.V)
			k, v := st.KV(cfg)
			keys[l], vals[l] = append(keys[l], k), append(vals[l], v)
			q := make([]int8, d)
			for i, acc := range st.AccQ {
				q[i] = llm.Requant(int64(acc), shD)
			}
			for h := range cfg.Heads {
				lo := h * hd
				scores, probs := make([]int64, pos+1), make([]int64, pos+1)
				for j := range pos + 1 {
					for e := range hd {
						scores[j] += int64(q[lo+e]) * int64(keys[l][j][lo+e])
					}
				}
				llm.Softmax(probs, scores, shA)
				for e := range hd {
					var o int64
					for j := range pos + 1 {
						o += probs[j] * int64(vals[l][j][lo+e])
					}
					st.Att[lo+e] = llm.Requant(o, llm.ProbBits)
				}
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
			if fx, ok := force[pos]; ok && l == cfg.Layers-2 {
				x = slices.Clone(fx) // the forgery: this stage's output is not its own
			}
			copy(st.XOut, x)
			stages[l] = st
		}
		macs += llm.MACs(llm.Config{Vocab: cfg.Vocab, Dim: d, Heads: cfg.Heads, Layers: cfg.Layers, FFN: f, Prompt: 1}) // rough
		tr.Stages = append(tr.Stages, stages)
		if pos >= cfg.Prompt-1 {
			tr.Logits = append(tr.Logits, logitsOf(w, x))
		}
	}
	return tr, macs
}

// steer returns, in closed form (no search), a residual stream whose
// LayerNorm points along sign(Wvocab[:, g]): token g then wins the
// argmax by a wide margin whatever one honest layer adds.
func steer(w *llm.Weights, g int, scale int32) []int32 {
	cfg := w.Config
	x := make([]int32, cfg.Dim)
	for i := range x {
		if w.Vocab[i*cfg.Vocab+g] < 0 {
			x[i] = -scale
		} else {
			x[i] = scale
		}
	}
	return x
}

// chosenTokens forges the fewest layer-(L-2) stages so that every link
// claims the token of tokens, iterating a batched forward to a fixpoint.
func chosenTokens(t *testing.T, w *llm.Weights, prompt, tokens []int, scale int32) (*llm.Trace, map[int][]int32) {
	cfg := w.Config
	force := map[int][]int32{}
	for iter := 0; iter < 2*cfg.Decode+2; iter++ {
		tr, _ := forcedForward(w, prompt, tokens, force)
		wrong := 0
		for k := range cfg.Decode {
			if llm.Argmax(tr.Logits[k]) != tokens[k] {
				wrong++
				force[cfg.Prompt-1+k] = steer(w, tokens[k], scale)
			}
		}
		if wrong == 0 {
			return tr, force
		}
	}
	t.Fatal("no fixpoint")
	return nil, nil
}

// hyper: probability that none of m forged stages is among s of n drawn.
func hyper(n, s, m int) float64 {
	if s > n-m {
		return 0
	}
	a := new(big.Int).Binomial(int64(n-m), int64(s))
	b := new(big.Int).Binomial(int64(n), int64(s))
	f, _ := new(big.Float).Quo(new(big.Float).SetInt(a), new(big.Float).SetInt(b)).Float64()
	return f
}

func escapeRun(t *testing.T, b *llmBed, tr *llm.Trace, tokens []int, stages, links, n int) (int, map[string]int) {
	a, err := NewLLMAnswer(b.cfg, tr, tokens)
	if err != nil {
		t.Fatal(err)
	}
	pass, why := 0, map[string]int{}
	for i := range n {
		checks, err := SampleLLMChecks(b.cfg, a.Root(), []byte("nonce"), []byte(fmt.Sprint("zz secret ", i)), stages, links)
		if err != nil {
			t.Fatal(err)
		}
		op, err := a.Open(checks)
		if err != nil {
			t.Fatal(err)
		}
		err = VerifyLLM(b.w, b.p, b.prompt, a.Root(), a.Tokens, checks, op)
		switch {
		case err == nil:
			pass++
		case errors.Is(err, ErrLLMAnswer):
			why[err.Error()[:min(60, len(err.Error()))]]++
		default:
			t.Fatalf("not a verdict: %v", err)
		}
	}
	return pass, why
}

// Attack 1: every stage computed honestly, then ONE stage (pos, L-2)
// of the last link forged in closed form (no search) so that the
// last token is the honest logits' WORST token.
func TestZZSteerOneTokenNoSearch(t *testing.T) {
	b := newLLMBed(t, llm.DevnetConfig)
	cfg := b.cfg
	res, err := llm.Run(context.Background(), b.w, b.prompt)
	if err != nil {
		t.Fatal(err)
	}
	honestTr, _ := forcedForward(b.w, b.prompt, res.Tokens, nil)
	lg := honestTr.Logits[cfg.Decode-1]
	worst := 0
	for j := range lg {
		if lg[j] < lg[worst] {
			worst = j
		}
	}
	for _, scale := range []int32{1 << 16, 1000} {
		tokens := slices.Clone(res.Tokens)
		tokens[cfg.Decode-1] = worst
		tr, force := chosenTokens(t, b.w, b.prompt, tokens, scale)
		const n = 400
		pass, why := escapeRun(t, b, tr, tokens, testLLMStageChecks, testLLMLinkChecks, n)
		t.Logf("scale %d: last token %d -> %d (worst of %d), %d stage(s) forged; escaped %d/%d = %.1f%% (predicted %.1f%%); caught by %v",
			scale, res.Tokens[cfg.Decode-1], worst, cfg.Vocab, len(force), pass, n, 100*float64(pass)/n,
			100*hyper(cfg.Positions()*cfg.Layers, testLLMStageChecks, len(force)), why)
	}
}

// Attack 2: the prover chooses EVERY token in advance (here a fixed
// message), runs one batched prefill over prompt+tokens (no sequential
// decode), and forges in closed form the layer-(L-2) stage of each link
// whose argmax is not the chosen token.
func TestZZChosenTokensBatched(t *testing.T) {
	b := newLLMBed(t, llm.DevnetConfig)
	cfg := b.cfg
	res, _ := llm.Run(context.Background(), b.w, b.prompt)
	for _, c := range []struct {
		name   string
		tokens func() []int
	}{
		{"arbitrary message", func() []int {
			m := make([]int, cfg.Decode)
			for i := range m {
				m[i] = (i*37 + 5) % cfg.Vocab
			}
			return m
		}},
		{"token 0 honest, then repeated (labelled batched-guess)", func() []int {
			m := make([]int, cfg.Decode)
			for i := range m {
				m[i] = res.Tokens[0]
			}
			return m
		}},
	} {
		tokens := c.tokens()
		tr, force := chosenTokens(t, b.w, b.prompt, tokens, 1<<16)
		const n = 1000
		pass, _ := escapeRun(t, b, tr, tokens, testLLMStageChecks, testLLMLinkChecks, n)
		t.Logf("%s: %d of %d tokens differ from honest; %d stages forged; escaped %d/%d = %.1f%% (predicted %.1f%%; docs: 0)",
			c.name, countDiff(tokens, res.Tokens), cfg.Decode, len(force), pass, n, 100*float64(pass)/n,
			100*hyper(cfg.Positions()*cfg.Layers, testLLMStageChecks, len(force)))
	}
}
