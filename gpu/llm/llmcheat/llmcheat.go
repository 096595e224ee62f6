// Package llmcheat is the labelled adversaries' forward pass of the llm
// workload: a model run the way a cheating prover runs it (fewer layers,
// windowed attention, an early stop, a guessed decode run as one batched
// prefill), recording a trace as gpu/llm.RunTrace would, so that it can
// be committed to and opened like an honest one. It is never on an honest
// path: node's adversary roles and challenge's tests use it.
package llmcheat

import (
	"github.com/poai-network/poai/gpu/llm"
)

// Cheat describes a cheating forward pass (Forward). The zero Cheat with
// Layers set to the model's is the honest computation.
type Cheat struct {
	// Layers is how many layers run per position (the rest pass the
	// stream through): a smaller model.
	Layers int
	// Window > 0: attention over the last Window positions only.
	Window int
	// Guess, when set, gives the decode's input tokens in advance (a
	// guessed decode run as one batched prefill): Guess(i, computed) is
	// generated token i, where computed is the argmax the cheat computed
	// there; the logits are still computed, the tokens claimed are the
	// guesses.
	Guess func(i, computed int) int
	// StopAfter > 0: only this many tokens are decoded; the rest of the
	// positions are left zero and the tokens padded with the last one.
	StopAfter int
	// Forge, when set, may rewrite the residual stream x after layer
	// layer at position pos: the stage's output, and the next layer's
	// input, are then x (a stage forged to steer what follows).
	Forge func(pos, layer int, x []int32)
}

// Forward runs w on prompt as c says, recording a trace as llm.RunTrace
// would, and returns the trace, the tokens it claims and the
// multiply-adds it spent.
func (c Cheat) Forward(w *llm.Weights, prompt []int) (*llm.Trace, []int, float64) {
	cfg := w.Config
	d, hd, f := cfg.Dim, cfg.HeadDim(), cfg.FFN
	shD, shF, shA := llm.Shift(d), llm.Shift(f), llm.AttentionShift(hd)
	keys, vals := make([][][]int8, cfg.Layers), make([][][]int8, cfg.Layers)
	tr := &llm.Trace{}
	var tokens []int
	var macs float64
	tok := 0
	var guessed []int // the guesses, each an input of the next position
	for pos := range cfg.Positions() {
		stages := make([]llm.Stage, cfg.Layers)
		tr.Stages = append(tr.Stages, stages)
		for l := range stages {
			stages[l] = llm.Stage{XIn: make([]int32, d), AccQ: make([]int32, d), AccK: make([]int32, d), AccV: make([]int32, d),
				Att: make([]int8, d), AccO: make([]int32, d), AccUp: make([]int32, f), AccDown: make([]int32, d), XOut: make([]int32, d)}
		}
		if c.StopAfter > 0 && pos >= cfg.Prompt+c.StopAfter-1 {
			continue // stopped: nothing computed
		}
		switch {
		case pos < cfg.Prompt:
			tok = prompt[pos]
		case c.Guess != nil:
			tok = guessed[pos-cfg.Prompt]
		}
		x := make([]int32, d)
		for i := range d {
			x[i] = int32(w.Embed[tok*d+i]) + int32(w.Pos[pos*d+i])
		}
		for l := range cfg.Layers {
			st := &stages[l]
			copy(st.XIn, x)
			if l >= c.Layers {
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
			if c.Window > 0 {
				from = max(0, pos+1-c.Window)
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
			if c.Forge != nil {
				c.Forge(pos, l, x)
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
			if c.Guess != nil {
				i := pos - (cfg.Prompt - 1)
				next = c.Guess(i, next)
				guessed = append(guessed, next)
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
