package llm

import (
	"errors"
	"fmt"
	"slices"

	"github.com/poai-network/poai/gpu"
)

// Stage is what one position computes in one layer (docs/llm-spec.md
// §4), with the int32 accumulators of its products, which a verifier
// checks by Freivalds instead of recomputing them. Everything else of the
// layer follows from these exactly: q, k, v = Requant(AccQ, AccK, AccV),
// x1 = XIn + Requant(AccO), u = GELU(Requant(AccUp)), and XOut = x1 +
// Requant(AccDown).
type Stage struct {
	XIn              []int32 // D: the residual stream entering the layer
	AccQ, AccK, AccV []int32 // D each: LayerNorm(XIn)·Wq, ·Wk, ·Wv
	Att              []int8  // D: the heads' outputs, before Wo
	AccO             []int32 // D: Att·Wo
	AccUp            []int32 // F: LayerNorm(x1)·Wup
	AccDown          []int32 // D: u·Wdown
	XOut             []int32 // D: the residual stream leaving the layer
}

func newStage(cfg Config) Stage {
	d := cfg.Dim
	return Stage{XIn: make([]int32, d), AccQ: make([]int32, d), AccK: make([]int32, d), AccV: make([]int32, d),
		Att: make([]int8, d), AccO: make([]int32, d), AccUp: make([]int32, cfg.FFN), AccDown: make([]int32, d), XOut: make([]int32, d)}
}

// acc returns the accumulator f picks of st, or nil for a nil stage.
func (st *Stage) acc(f func(*Stage) []int32) []int32 {
	if st == nil {
		return nil
	}
	return f(st)
}

// KV returns the stage's own key and value rows, Requant(AccK) and
// Requant(AccV).
func (st *Stage) KV(cfg Config) (k, v []int8) {
	sh := Shift(cfg.Dim)
	k, v = make([]int8, len(st.AccK)), make([]int8, len(st.AccV))
	for i := range k {
		k[i], v[i] = Requant(int64(st.AccK[i]), sh), Requant(int64(st.AccV[i]), sh)
	}
	return k, v
}

// Trace is every Stage of a task, by position then layer, and the logits
// (V int32) of each position that produced a token, in order: position
// P − 1 + i produced generated token i.
type Trace struct {
	Stages [][]Stage
	Logits [][]int32
}

// Projection is a verifier's private Freivalds projection of a model's
// weights: for each matrix W (k×m), W·r mod 2^61 − 1 (length k), with r
// the verifier's vector for W's output width (RD for width D, RF for F,
// RV for V). A verifier draws r from crypto/rand, never from anything a
// prover sees, and computes a Projection once per weight seed: its cost
// is one pass over the weights (WeightMACs), shared by every challenge
// on that model.
//
// The three products of one input, q, k and v, are checked as one:
// AccQ·RD + MixK·(AccK·RD) + MixV·(AccV·RD) = a·QKV, with QKV = Wq·RD +
// MixK·Wk·RD + MixV·Wv·RD. For wrong accumulators, errors eQ, eK, eV not
// all zero, eQ + MixK·eK + MixV·eV is zero for at most one MixK (eK ≠ 0)
// or MixV (else), and a nonzero vector's product with RD is zero with
// probability 1/(2^61 − 1): they pass with probability at most
// 2/(2^61 − 1), and the check reads a once instead of three times.
type Projection struct {
	RD, RF, RV []uint64
	MixK, MixV uint64
	Layers     []LayerProjection
	Vocab      []uint64 // Wvocab·RV, length D
}

// LayerProjection is one layer's projected weights.
type LayerProjection struct {
	Q, K, V, O, Up, Down []uint64
	// QKV is Q + MixK·K + MixV·V.
	QKV []uint64
}

// Project returns w's projection on the vectors rD (len D), rF (len F)
// and rV (len V) and the scalars mixK and mixV, all below
// gpu.FreivaldsPrime and drawn independently.
func Project(w *Weights, rD, rF, rV []uint64, mixK, mixV uint64) (*Projection, error) {
	cfg := w.Config
	if len(rD) != cfg.Dim || len(rF) != cfg.FFN || len(rV) != cfg.Vocab {
		return nil, fmt.Errorf("%w: projection vectors of %d, %d, %d; want %d, %d, %d", ErrConfig, len(rD), len(rF), len(rV), cfg.Dim, cfg.FFN, cfg.Vocab)
	}
	if mixK >= gpu.FreivaldsPrime || mixV >= gpu.FreivaldsPrime {
		return nil, fmt.Errorf("%w: mixing scalars outside the field", ErrConfig)
	}
	p := &Projection{RD: rD, RF: rF, RV: rV, MixK: mixK, MixV: mixV, Vocab: project(w.Vocab, rV)}
	for _, L := range w.Layers {
		lp := LayerProjection{
			Q: project(L.Q, rD), K: project(L.K, rD), V: project(L.V, rD), O: project(L.O, rD),
			Up: project(L.Up, rF), Down: project(L.Down, rD),
		}
		lp.QKV = make([]uint64, len(lp.Q))
		for i := range lp.QKV {
			lp.QKV[i] = addMod(lp.Q[i], addMod(gpu.MulMod61(mixK, lp.K[i]), gpu.MulMod61(mixV, lp.V[i])))
		}
		p.Layers = append(p.Layers, lp)
	}
	return p, nil
}

// WeightMACs returns the multiply-adds of Project: the number of weights
// in the layers and the unembedding, and 2·D per layer mixing QKV.
func WeightMACs(cfg Config) float64 {
	d, f := float64(cfg.Dim), float64(cfg.FFN)
	return float64(cfg.Layers)*(4*d*d+2*d*f+2*d) + d*float64(cfg.Vocab)
}

// project returns W·r mod 2^61 − 1 for W row-major k×len(r).
func project(w []int8, r []uint64) []uint64 {
	m := len(r)
	out := make([]uint64, len(w)/m)
	for i := range out {
		var acc uint64
		for j, v := range w[i*m : (i+1)*m] {
			acc = addMod(acc, gpu.MulMod61(gpu.ToField61(int64(v)), r[j]))
		}
		out[i] = acc
	}
	return out
}

func addMod(a, b uint64) uint64 {
	s := a + b
	if s >= gpu.FreivaldsPrime {
		s -= gpu.FreivaldsPrime
	}
	return s
}

// dotMod returns Σ x[i]·r[i] mod 2^61 − 1 for small signed integers x.
func dotMod[T int8 | int32](x []T, r []uint64) uint64 {
	var acc uint64
	for i, v := range x {
		acc = addMod(acc, gpu.MulMod61(gpu.ToField61(int64(v)), r[i]))
	}
	return acc
}

// freivalds reports whether acc = x·W, tested as acc·r = x·(W·r) mod
// 2^61 − 1. A wrong acc passes with probability at most 1/(2^61 − 1) for
// an r the prover does not know.
func freivalds[T int8 | int32](acc []int32, r []uint64, x []T, wr []uint64) bool {
	return len(acc) == len(r) && len(x) == len(wr) && dotMod(acc, r) == dotMod(x, wr)
}

// MaxStream bounds the residual stream's values, 2^22: an honest stream
// starts at |x| ≤ 255 and each layer adds at most 254, so it never comes
// near; beyond it LayerNorm's int64 sum of squares (D ≤ 2^16 values of
// (2^23)²) could overflow. VerifyStage refuses a stage entering with a
// value beyond it.
const MaxStream = 1 << 22

// ErrStage reports a stage that does not follow from its inputs.
var ErrStage = errors.New("llm stage does not check")

// VerifyStage checks stage st of position pos in layer l against the
// model (w and the verifier's projection p): each product by Freivalds,
// every elementwise step exactly, the layer's output, and attention
// exactly for each head of heads, given the layer's key and value rows of
// positions 0 … pos − 1 (keys[j], values[j], D int8 each; those of pos
// are st's own). Its cost, apart from attention, is a few times D + F
// multiply-adds; attention costs 2·(pos+1)·d_head per head. It returns an
// error wrapping ErrStage naming the first check that fails.
func VerifyStage(w *Weights, p *Projection, pos, l int, st *Stage, keys, values [][]int8, heads []int) error {
	cfg := w.Config
	d, hd := cfg.Dim, cfg.HeadDim()
	if l < 0 || l >= cfg.Layers || pos < 0 || pos >= cfg.Positions() {
		return fmt.Errorf("%w: position %d, layer %d outside the task", ErrStage, pos, l)
	}
	if len(st.XIn) != d || len(st.AccQ) != d || len(st.AccK) != d || len(st.AccV) != d || len(st.Att) != d ||
		len(st.AccO) != d || len(st.AccUp) != cfg.FFN || len(st.AccDown) != d || len(st.XOut) != d {
		return fmt.Errorf("%w: a field has the wrong length", ErrStage)
	}
	for _, v := range st.XIn {
		if v >= MaxStream || v <= -MaxStream {
			return fmt.Errorf("%w: position %d layer %d: a stream value of %d, beyond ±%d", ErrStage, pos, l, v, MaxStream)
		}
	}
	lp := p.Layers[l]
	shD, shF := Shift(d), Shift(cfg.FFN)
	a := make([]int8, d)
	LayerNorm(a, st.XIn)
	qkv := addMod(dotMod(st.AccQ, p.RD), addMod(gpu.MulMod61(p.MixK, dotMod(st.AccK, p.RD)), gpu.MulMod61(p.MixV, dotMod(st.AccV, p.RD))))
	if len(lp.QKV) != d || qkv != dotMod(a, lp.QKV) {
		return fmt.Errorf("%w: position %d layer %d: the q, k and v projections are not LayerNorm(x)·Wq, ·Wk and ·Wv", ErrStage, pos, l)
	}
	if len(heads) > 0 {
		if len(keys) != pos || len(values) != pos {
			return fmt.Errorf("%w: %d key and %d value rows for position %d, want %d", ErrStage, len(keys), len(values), pos, pos)
		}
		q := make([]int8, d)
		for i, v := range st.AccQ {
			q[i] = Requant(int64(v), shD)
		}
		k, v := st.KV(cfg)
		keys, values = append(slices.Clip(keys), k), append(slices.Clip(values), v)
		scores, probs := make([]int64, pos+1), make([]int64, pos+1)
		for _, h := range heads {
			if h < 0 || h >= cfg.Heads {
				return fmt.Errorf("%w: head %d of %d", ErrStage, h, cfg.Heads)
			}
			lo := h * hd
			for j := range pos + 1 {
				if len(keys[j]) != d || len(values[j]) != d {
					return fmt.Errorf("%w: key or value row %d is not %d long", ErrStage, j, d)
				}
				var dot int64
				for e := range hd {
					dot += int64(q[lo+e]) * int64(keys[j][lo+e])
				}
				scores[j] = dot
			}
			Softmax(probs, scores, AttentionShift(hd))
			for e := range hd {
				var o int64
				for j := range pos + 1 {
					o += probs[j] * int64(values[j][lo+e])
				}
				if Requant(o, ProbBits) != st.Att[lo+e] {
					return fmt.Errorf("%w: position %d layer %d head %d: attention output differs at %d", ErrStage, pos, l, h, e)
				}
			}
		}
	}
	if !freivalds(st.AccO, p.RD, st.Att, lp.O) {
		return fmt.Errorf("%w: position %d layer %d: the output projection is not Att·Wo", ErrStage, pos, l)
	}
	x1 := make([]int32, d)
	for i := range d {
		x1[i] = st.XIn[i] + int32(Requant(int64(st.AccO[i]), shD))
	}
	LayerNorm(a, x1)
	if !freivalds(st.AccUp, p.RF, a, lp.Up) {
		return fmt.Errorf("%w: position %d layer %d: the up projection is not LayerNorm(x1)·Wup", ErrStage, pos, l)
	}
	u := make([]int8, cfg.FFN)
	for i, v := range st.AccUp {
		u[i] = GELU(Requant(int64(v), shD))
	}
	if !freivalds(st.AccDown, p.RD, u, lp.Down) {
		return fmt.Errorf("%w: position %d layer %d: the down projection is not GELU(u)·Wdown", ErrStage, pos, l)
	}
	for i := range d {
		if st.XOut[i] != x1[i]+int32(Requant(int64(st.AccDown[i]), shF)) {
			return fmt.Errorf("%w: position %d layer %d: the output stream differs at %d", ErrStage, pos, l, i)
		}
	}
	return nil
}

// VerifyInput checks that xin, the stream entering layer 0 at position
// pos, is Embed[tok] + Pos[pos].
func VerifyInput(w *Weights, pos, tok int, xin []int32) error {
	d := w.Config.Dim
	if tok < 0 || tok >= w.Config.Vocab || pos < 0 || pos >= w.Config.Prompt+w.Config.Decode || len(xin) != d {
		return fmt.Errorf("%w: token %d at position %d", ErrStage, tok, pos)
	}
	for i := range d {
		if xin[i] != int32(w.Embed[tok*d+i])+int32(w.Pos[pos*d+i]) {
			return fmt.Errorf("%w: position %d: the input is not token %d's embedding", ErrStage, pos, tok)
		}
	}
	return nil
}

// VerifyToken checks the link from a position's last layer to the next
// token: logits = LayerNorm(xout)·Wvocab by Freivalds, and next their
// argmax (lowest index on a tie).
func VerifyToken(w *Weights, p *Projection, xout, logits []int32, next int) error {
	a := make([]int8, w.Config.Dim)
	if len(xout) != w.Config.Dim {
		return fmt.Errorf("%w: output stream of %d values", ErrStage, len(xout))
	}
	LayerNorm(a, xout)
	if !freivalds(logits, p.RV, a, p.Vocab) {
		return fmt.Errorf("%w: the logits are not LayerNorm(x)·Wvocab", ErrStage)
	}
	if got := Argmax(logits); got != next {
		return fmt.Errorf("%w: the logits' argmax is %d, the next token %d", ErrStage, got, next)
	}
	return nil
}

// StageVerifierMACs returns the multiply-adds of VerifyStage with the
// given number of heads checked at position pos: StageFreivaldsMACs and
// AttentionMACs.
func StageVerifierMACs(cfg Config, pos, heads int) float64 {
	return StageFreivaldsMACs(cfg) + AttentionMACs(cfg, pos, heads)
}

// StageFreivaldsMACs returns the multiply-adds of VerifyStage's Freivalds
// dot products of the six products, both sides: the accumulators' 5·D +
// F, the inputs' 3·D + F (q, k and v share one, Projection), and 2 mixing
// q, k and v: 8·D + 2·F + 2.
func StageFreivaldsMACs(cfg Config) float64 {
	d, f := float64(cfg.Dim), float64(cfg.FFN)
	return 8*d + 2*f + 2
}

// AttentionMACs returns the multiply-adds of recomputing heads heads'
// attention at position pos: scores and outputs, 2·(pos+1)·d_head each.
func AttentionMACs(cfg Config, pos, heads int) float64 {
	return float64(heads) * 2 * float64(pos+1) * float64(cfg.HeadDim())
}
