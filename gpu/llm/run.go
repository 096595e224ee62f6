package llm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Result is a task's outcome: the tokens greedy decoding generated and the
// residual stream after the last layer at every position.
type Result struct {
	// Tokens are the T generated tokens, in order.
	Tokens []int
	// Hidden holds, per position (P + T − 1 of them), the D int32 values
	// of the residual stream after the last layer.
	Hidden [][]int32
}

// HiddenHash returns SHA-256 over every position's final residual
// stream, each value little-endian int32, positions in order: what the
// golden vectors pin.
func (r *Result) HiddenHash() [32]byte {
	h := sha256.New()
	var b [4]byte
	for _, row := range r.Hidden {
		for _, v := range row {
			binary.LittleEndian.PutUint32(b[:], uint32(v))
			h.Write(b[:])
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// state is one task's running state: the residual stream of the current
// position and each layer's KV cache, as a server keeps it.
type state struct {
	w      *Weights
	k, v   [][]int8 // per layer, positions×D, appended as positions run
	x      []int32  // residual stream, D
	a      []int8   // LayerNorm output, D
	q      []int8
	att    []int8
	u      []int8 // FFN hidden, F
	acc    []int32
	accF   []int32
	scores []int64
	probs  []int64
	// attended, when set, sees each head's attention probabilities (tests).
	attended func(pos, layer, head int, p []int64)
}

// Run prefills prompt (P tokens) and greedily decodes cfg.Decode tokens:
// each generated token is the argmax of the logits (lowest index on a
// tie) at the previous position and the input of the next. Positions run
// one at a time, each reading the KV cache of those before it; a batched
// prefill computes the same bits. It stops early, returning ctx's error,
// when ctx ends.
func Run(ctx context.Context, w *Weights, prompt []int) (*Result, error) {
	return runTask(ctx, w, prompt, nil)
}

// RunTrace is Run that also returns every Stage and the logits of every
// position that produced a token: what a prover commits to and opens.
func RunTrace(ctx context.Context, w *Weights, prompt []int) (*Result, *Trace, error) {
	t := &Trace{}
	r, err := runTask(ctx, w, prompt, t)
	if err != nil {
		return nil, nil, err
	}
	return r, t, nil
}

func runTask(ctx context.Context, w *Weights, prompt []int, trace *Trace) (*Result, error) {
	cfg := w.Config
	if len(prompt) != cfg.Prompt {
		return nil, fmt.Errorf("%w: prompt of %d tokens, config says %d", ErrConfig, len(prompt), cfg.Prompt)
	}
	for i, t := range prompt {
		if t < 0 || t >= cfg.Vocab {
			return nil, fmt.Errorf("%w: prompt token %d is %d, outside the vocabulary of %d", ErrConfig, i, t, cfg.Vocab)
		}
	}
	s := newState(w)
	res := &Result{}
	logits := make([]int32, cfg.Vocab)
	tok := prompt[0]
	for pos := range cfg.Positions() {
		if pos%8 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if pos < cfg.Prompt {
			tok = prompt[pos]
		}
		var stages []Stage
		if trace != nil {
			stages = make([]Stage, cfg.Layers)
			trace.Stages = append(trace.Stages, stages)
		}
		s.position(pos, tok, stages)
		res.Hidden = append(res.Hidden, append([]int32(nil), s.x...))
		if pos >= cfg.Prompt-1 && cfg.Decode > 0 {
			LayerNorm(s.a, s.x)
			GEMV(logits, s.a, w.Vocab)
			tok = Argmax(logits)
			res.Tokens = append(res.Tokens, tok)
			if trace != nil {
				trace.Logits = append(trace.Logits, append([]int32(nil), logits...))
			}
		}
	}
	return res, nil
}

// newState returns the empty running state of a task on w.
func newState(w *Weights) *state {
	cfg := w.Config
	d, n := cfg.Dim, cfg.Prompt+cfg.Decode
	return &state{w: w, k: make([][]int8, cfg.Layers), v: make([][]int8, cfg.Layers),
		x: make([]int32, d), a: make([]int8, d), q: make([]int8, d), att: make([]int8, d), u: make([]int8, cfg.FFN),
		acc: make([]int32, d), accF: make([]int32, cfg.FFN), scores: make([]int64, 0, n), probs: make([]int64, n)}
}

// Argmax returns the index of the largest value, the lowest on a tie.
func Argmax(v []int32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// position runs every layer at position pos for input token tok, leaving
// the final residual stream in s.x and appending to the KV caches. When
// stages is not nil, it records each layer's Stage into stages[layer].
func (s *state) position(pos, tok int, stages []Stage) {
	w, cfg := s.w, s.w.Config
	d, hd := cfg.Dim, cfg.HeadDim()
	for i := range d {
		s.x[i] = int32(w.Embed[tok*d+i]) + int32(w.Pos[pos*d+i])
	}
	shD, shF, shA := Shift(d), Shift(cfg.FFN), AttentionShift(hd)
	kRow, vRow := make([]int8, d), make([]int8, d)
	for l, L := range w.Layers {
		var st *Stage
		if stages != nil {
			st = &stages[l]
			*st = newStage(cfg)
			copy(st.XIn, s.x)
		}
		// Attention: q, k, v from the normalized stream.
		LayerNorm(s.a, s.x)
		requantize(s.q, s.acc, s.a, L.Q, shD, st.acc(func(st *Stage) []int32 { return st.AccQ }))
		requantize(kRow, s.acc, s.a, L.K, shD, st.acc(func(st *Stage) []int32 { return st.AccK }))
		requantize(vRow, s.acc, s.a, L.V, shD, st.acc(func(st *Stage) []int32 { return st.AccV }))
		s.k[l] = append(s.k[l], kRow...)
		s.v[l] = append(s.v[l], vRow...)
		n := pos + 1
		for h := range cfg.Heads {
			lo := h * hd
			s.scores = s.scores[:0]
			for j := range n {
				var dot int64
				kj := s.k[l][j*d+lo : j*d+lo+hd]
				for e, qe := range s.q[lo : lo+hd] {
					dot += int64(qe) * int64(kj[e])
				}
				s.scores = append(s.scores, dot)
			}
			p := s.probs[:n]
			Softmax(p, s.scores, shA)
			if s.attended != nil {
				s.attended(pos, l, h, p)
			}
			for e := range hd {
				var o int64
				for j := range n {
					o += p[j] * int64(s.v[l][j*d+lo+e])
				}
				s.att[lo+e] = Requant(o, ProbBits)
			}
		}
		GEMV(s.acc, s.att, L.O)
		addRequant(s.x, s.acc, shD)
		if st != nil {
			copy(st.Att, s.att)
			copy(st.AccO, s.acc)
		}
		// Feed-forward.
		LayerNorm(s.a, s.x)
		GEMV(s.accF, s.a, L.Up)
		for i, v := range s.accF {
			s.u[i] = GELU(Requant(int64(v), shD))
		}
		GEMV(s.acc, s.u, L.Down)
		addRequant(s.x, s.acc, shF)
		if st != nil {
			copy(st.AccUp, s.accF)
			copy(st.AccDown, s.acc)
			copy(st.XOut, s.x)
		}
	}
}

// addRequant adds Requant(acc[i], shift) to the residual stream x.
func addRequant(x, acc []int32, shift uint) {
	for i := range x {
		x[i] += int32(Requant(int64(acc[i]), shift))
	}
}

// requantize sets dst = Requant(x·W, shift), using acc (len(dst)) as the
// accumulator, and copies the accumulator into keep when it is not nil.
func requantize(dst []int8, acc []int32, x, w []int8, shift uint, keep []int32) {
	GEMV(acc[:len(dst)], x, w)
	for i, v := range acc[:len(dst)] {
		dst[i] = Requant(int64(v), shift)
	}
	copy(keep, acc[:len(dst)])
}

// MACs returns the multiply-accumulates of a task of cfg: per position,
// 4·D² (q, k, v, o) + 2·D·F (feed-forward) per layer plus D·(pos+1)·2 for
// attention per layer, and D·V for the logits at the last prompt position
// and every decode position.
func MACs(cfg Config) float64 {
	d, f := float64(cfg.Dim), float64(cfg.FFN)
	var total float64
	for pos := range cfg.Positions() {
		total += float64(cfg.Layers) * (4*d*d + 2*d*f + 2*d*float64(pos+1))
		if pos >= cfg.Prompt-1 && cfg.Decode > 0 {
			total += d * float64(cfg.Vocab)
		}
	}
	return total
}
