package challenge

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/llm"
)

// The llm workload's commitment, sampling and checks (docs/llm-spec.md
// §7): what a prover commits to after running the model (gpu/llm), which
// parts verifiers open, and how they check them. The wire messages that
// will carry them are not defined yet (issue 20); this is the proof's
// core, run in-process.

// LLMWeightEpochs is how many epochs share one llm model: a verifier
// projects the weights (llm.Project, about one task's multiply-adds at
// the devnet shape) once per weight epoch, and every challenge of those
// epochs reuses it.
const LLMWeightEpochs = 64

const llmWeightsTag = "poai/1/llm-weights"

// LLMWeightSeed returns the weight seed of the model used in epoch e of a
// network with genesis genesis (Unix seconds): SHA-256(tag ‖ genesis ‖
// ⌊e / LLMWeightEpochs⌋), both 8-byte big-endian. It is public and
// predictable, which is harmless for weights: what a prover computes
// depends on the challenge's prompt, drawn from the challenge's seed.
func LLMWeightSeed(genesis int64, e uint64) gpu.Seed {
	h := sha256.New()
	h.Write([]byte(llmWeightsTag))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(genesis)))
	h.Write(binary.BigEndian.AppendUint64(nil, e/LLMWeightEpochs))
	var s gpu.Seed
	h.Sum(s[:0])
	return s
}

// LLMLayout numbers the leaves of an llm answer for cfg, in this order:
// every stage (position pos, layer l) at pos·L + l; then every key-value
// leaf (layer l, head h, position pos) at N·L + (l·H + h)·N + pos; then
// every token leaf i at N·L + L·H·N + i. N is cfg.Positions().
type LLMLayout struct{ Cfg llm.Config }

// Leaves returns the number of leaves.
func (y LLMLayout) Leaves() int {
	c := y.Cfg
	n := c.Positions()
	return n*c.Layers + c.Layers*c.Heads*n + c.Decode
}

// Stage returns the index of stage (pos, layer).
func (y LLMLayout) Stage(pos, layer int) int { return pos*y.Cfg.Layers + layer }

// KV returns the index of the key-value leaf of head in layer at pos.
func (y LLMLayout) KV(layer, head, pos int) int {
	c := y.Cfg
	n := c.Positions()
	return n*c.Layers + (layer*c.Heads+head)*n + pos
}

// Token returns the index of token leaf i (the i-th generated token).
func (y LLMLayout) Token(i int) int {
	c := y.Cfg
	n := c.Positions()
	return n*c.Layers + c.Layers*c.Heads*n + i
}

// EncodeStage returns a stage's leaf value: XIn, AccQ, AccK, AccV, Att,
// AccO, AccUp, AccDown, XOut, in that order, int32 little-endian and
// int8 as bytes.
func EncodeStage(st *llm.Stage) []byte {
	var b []byte
	for _, v := range [][]int32{st.XIn, st.AccQ, st.AccK, st.AccV} {
		b = appendInt32s(b, v)
	}
	for _, v := range st.Att {
		b = append(b, byte(v))
	}
	for _, v := range [][]int32{st.AccO, st.AccUp, st.AccDown, st.XOut} {
		b = appendInt32s(b, v)
	}
	return b
}

func appendInt32s(b []byte, v []int32) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return b
}

// StageBytes returns the size of a stage leaf of cfg: 4·(7·D + F) + D.
func StageBytes(cfg llm.Config) int { return 4*(7*cfg.Dim+cfg.FFN) + cfg.Dim }

// DecodeStage is the inverse of EncodeStage; it returns an error wrapping
// ErrMalformed when b is not a stage of cfg.
func DecodeStage(cfg llm.Config, b []byte) (*llm.Stage, error) {
	if len(b) != StageBytes(cfg) {
		return nil, fmt.Errorf("%w: stage leaf of %d bytes, want %d", ErrMalformed, len(b), StageBytes(cfg))
	}
	d := cfg.Dim
	read := func(n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		b = b[4*n:]
		return out
	}
	st := &llm.Stage{XIn: read(d), AccQ: read(d), AccK: read(d), AccV: read(d)}
	st.Att = make([]int8, d)
	for i := range d {
		st.Att[i] = int8(b[i])
	}
	b = b[d:]
	st.AccO, st.AccUp, st.AccDown, st.XOut = read(d), read(cfg.FFN), read(d), read(d)
	return st, nil
}

// EncodeKV returns a key-value leaf: one head's d_head key values then its
// d_head value values, as bytes.
func EncodeKV(k, v []int8) []byte {
	b := make([]byte, 0, len(k)+len(v))
	for _, x := range k {
		b = append(b, byte(x))
	}
	for _, x := range v {
		b = append(b, byte(x))
	}
	return b
}

// EncodeToken returns a token leaf: the V logits, int32 little-endian,
// then the token, uint32 little-endian.
func EncodeToken(logits []int32, token int) []byte {
	return binary.LittleEndian.AppendUint32(appendInt32s(nil, logits), uint32(token))
}

// LLMAnswer is a prover's committed answer: the generated tokens and the
// Merkle tree over every leaf's value.
type LLMAnswer struct {
	Layout LLMLayout
	Tokens []int
	values [][]byte
	tree   *merkle.Tree
}

// NewLLMAnswer commits to a trace (from llm.RunTrace, or a cheater's
// making) and its generated tokens. It checks shapes only: whether the
// values are right is what verifiers check.
func NewLLMAnswer(cfg llm.Config, tr *llm.Trace, tokens []int) (*LLMAnswer, error) {
	y := LLMLayout{cfg}
	n := cfg.Positions()
	if len(tr.Stages) != n || len(tr.Logits) != cfg.Decode || len(tokens) != cfg.Decode {
		return nil, fmt.Errorf("%w: trace of %d positions, %d logits and %d tokens, want %d, %d, %d", ErrMalformed, len(tr.Stages), len(tr.Logits), len(tokens), n, cfg.Decode, cfg.Decode)
	}
	values := make([][]byte, y.Leaves())
	hd := cfg.HeadDim()
	for pos, stages := range tr.Stages {
		if len(stages) != cfg.Layers {
			return nil, fmt.Errorf("%w: position %d has %d layers", ErrMalformed, pos, len(stages))
		}
		for l := range stages {
			st := &stages[l]
			values[y.Stage(pos, l)] = EncodeStage(st)
			k, v := st.KV(cfg)
			for h := range cfg.Heads {
				values[y.KV(l, h, pos)] = EncodeKV(k[h*hd:(h+1)*hd], v[h*hd:(h+1)*hd])
			}
		}
	}
	for i, lg := range tr.Logits {
		values[y.Token(i)] = EncodeToken(lg, tokens[i])
	}
	leaves := make([]merkle.Hash, len(values))
	for i, v := range values {
		leaves[i] = merkle.LeafHash(v)
	}
	tree, err := merkle.New(leaves)
	if err != nil {
		return nil, err
	}
	return &LLMAnswer{Layout: y, Tokens: slices.Clone(tokens), values: values, tree: tree}, nil
}

// Root returns the answer's Merkle root.
func (a *LLMAnswer) Root() merkle.Hash { return a.tree.Root() }

// LLMCheck is one check a verifier makes of an llm answer: a stage (Pos,
// Layer) with attention recomputed on Head, or, when Link ≥ 0, the link
// from position P − 1 + Link to generated token Link and on to the next
// position's input: the position's whole column of stages, the last layer
// on every head and each layer below on Heads[layer].
type LLMCheck struct {
	Pos, Layer, Head int
	Link             int
	// Heads is a link's head for each layer below the last (L − 1 of
	// them); nil for a stage check.
	Heads []int
}

const (
	llmStageTag = "poai/1/llm-stage"
	llmHeadTag  = "poai/1/llm-head"
	llmLinkTag  = "poai/1/llm-link"
	// llmLinkHeadTag draws a link's heads of the layers below the last.
	llmLinkHeadTag = "poai/1/llm-link-head"
)

// SampleLLMChecks returns the checks of an answer with root: links
// distinct decode links (at most T) and stages distinct stages, each with
// a head, all drawn like SampleRows from the root, the nonce and the
// sampling randomness (the challenger's secret and the verifiers'
// shares), under their own tags. Decode links are sampled on purpose: a
// prover that guesses the decode and runs it as one batched prefill is
// wrong only at links, a few of all leaves.
func SampleLLMChecks(cfg llm.Config, root merkle.Hash, nonce, secret []byte, stages, links int) ([]LLMCheck, error) {
	n := cfg.Positions() * cfg.Layers
	idx, err := sample(llmStageTag, root, nonce, secret, n, min(stages, n))
	if err != nil {
		return nil, err
	}
	heads, err := sampleWithReplacement(llmHeadTag, root, nonce, secret, cfg.Heads, len(idx))
	if err != nil {
		return nil, err
	}
	var out []LLMCheck
	for i, s := range idx {
		out = append(out, LLMCheck{Pos: s / cfg.Layers, Layer: s % cfg.Layers, Head: heads[i], Link: -1})
	}
	if cfg.Decode > 0 && links > 0 {
		li, err := sample(llmLinkTag, root, nonce, secret, cfg.Decode, min(links, cfg.Decode))
		if err != nil {
			return nil, err
		}
		lower := cfg.Layers - 1
		heads, err := sampleWithReplacement(llmLinkHeadTag, root, nonce, secret, cfg.Heads, len(li)*lower)
		if err != nil {
			return nil, err
		}
		for j, i := range li {
			out = append(out, LLMCheck{Link: i, Heads: heads[j*lower : (j+1)*lower : (j+1)*lower]})
		}
	}
	return out, nil
}

// sampleWithReplacement returns count values in [0, n), uniform and
// independent, from the stream sample uses.
func sampleWithReplacement(tag string, root merkle.Hash, nonce, secret []byte, n, count int) ([]int, error) {
	out := make([]int, count)
	for i := range out {
		v, err := sample(fmt.Sprint(tag, "/", i), root, nonce, secret, n, 1)
		if err != nil {
			return nil, err
		}
		out[i] = v[0]
	}
	return out, nil
}

// LLMOpening is what a prover opens for a set of checks: every leaf they
// need, by increasing index, and one Merkle multi-proof for them all
// (merkle.MultiProof).
type LLMOpening struct {
	Leaves []OpenedLeaf
	Proof  []merkle.Hash
}

// OpenedLeaf is one leaf of an llm opening: its index and value.
type OpenedLeaf struct {
	Index int
	Value []byte
}

// leavesFor returns the leaf indices checks open, sorted and distinct
// (stageLeaves for each stage a check verifies): for a stage check, its
// stage with its head; for a link, the token leaf, the stages of position
// P − 1 + Link (the last layer with every head, each layer below with its
// head) and, below the last token, layer 0's stage at position P + Link.
func (y LLMLayout) leavesFor(checks []LLMCheck) []int {
	c := y.Cfg
	var idx []int
	for _, k := range checks {
		if k.Link >= 0 {
			idx = append(idx, y.Token(k.Link))
			idx = append(idx, y.stageLeaves(c.Prompt-1+k.Link, c.Layers-1, allHeads(c))...)
			for l, h := range k.Heads {
				if l < c.Layers-1 && h >= 0 && h < c.Heads {
					idx = append(idx, y.stageLeaves(c.Prompt-1+k.Link, l, []int{h})...)
				}
			}
			if k.Link < c.Decode-1 {
				idx = append(idx, y.Stage(c.Prompt+k.Link, 0))
			}
			continue
		}
		idx = append(idx, y.stageLeaves(k.Pos, k.Layer, []int{k.Head})...)
	}
	slices.Sort(idx)
	return slices.Compact(idx)
}

// stageLeaves returns what verifying stage (pos, l) on heads opens: the
// stage, the stage below it (its input's source; none at layer 0), the
// stage's own key-value leaves of every head, and those of heads at every
// earlier position.
func (y LLMLayout) stageLeaves(pos, l int, heads []int) []int {
	idx := []int{y.Stage(pos, l)}
	if l > 0 {
		idx = append(idx, y.Stage(pos, l-1))
	}
	for h := range y.Cfg.Heads {
		idx = append(idx, y.KV(l, h, pos))
	}
	for _, h := range heads {
		for j := range pos {
			idx = append(idx, y.KV(l, h, j))
		}
	}
	return idx
}

func allHeads(c llm.Config) []int {
	h := make([]int, c.Heads)
	for i := range h {
		h[i] = i
	}
	return h
}

// Open returns the leaves checks need, with their multi-proof.
func (a *LLMAnswer) Open(checks []LLMCheck) (*LLMOpening, error) {
	idx := a.Layout.leavesFor(checks)
	op := &LLMOpening{}
	for _, i := range idx {
		if i < 0 || i >= len(a.values) {
			return nil, fmt.Errorf("%w: leaf %d of %d", ErrMalformed, i, len(a.values))
		}
		op.Leaves = append(op.Leaves, OpenedLeaf{Index: i, Value: a.values[i]})
	}
	proof, err := a.tree.MultiProof(idx)
	if err != nil {
		return nil, err
	}
	op.Proof = proof
	return op, nil
}

// Bytes returns the size of the opening: leaf values, a 4-byte index
// each, and the proof's hashes.
func (op *LLMOpening) Bytes() int {
	n := 32 * len(op.Proof)
	for _, l := range op.Leaves {
		n += len(l.Value) + 4
	}
	return n
}

// ErrLLMAnswer reports an llm answer that fails a check.
var ErrLLMAnswer = errors.New("llm answer fails its check")

// VerifyLLM checks an llm answer with root and generated tokens against
// the model w (with the verifier's private projection p) and the prompt:
// every leaf checks lists must be opened, under root; each stage check
// runs llm.VerifyStage on its head, with the key-value leaves of every
// earlier position, checks the stage's own key-value leaf against its
// accumulators, and its input: at layer 0 against the prompt token or the
// generated token it follows, above against the output of the layer
// below; each link check verifies its column so and runs llm.VerifyToken
// and llm.VerifyInput. A stage that several checks name is verified once,
// on the union of their heads (llmStagePlan). It returns nil, or an error
// wrapping ErrLLMAnswer (a wrong answer) or ErrMalformed (an opening that
// does not fit).
func VerifyLLM(w *llm.Weights, p *llm.Projection, prompt []int, root merkle.Hash, tokens []int, checks []LLMCheck, op *LLMOpening) error {
	cfg := w.Config
	y := LLMLayout{cfg}
	if len(prompt) != cfg.Prompt || len(tokens) != cfg.Decode {
		return fmt.Errorf("%w: %d prompt and %d generated tokens, want %d and %d", ErrMalformed, len(prompt), len(tokens), cfg.Prompt, cfg.Decode)
	}
	want := y.leavesFor(checks)
	if op == nil || len(want) == 0 {
		return fmt.Errorf("%w: no opening, or no checks", ErrMalformed)
	}
	if len(op.Leaves) != len(want) {
		return fmt.Errorf("%w: %d leaves opened, the checks need %d", ErrMalformed, len(op.Leaves), len(want))
	}
	leaf := map[int][]byte{}
	hashes := make([]merkle.Hash, len(want))
	for j, o := range op.Leaves {
		if o.Index != want[j] {
			return fmt.Errorf("%w: leaf %d opened where the checks need %d", ErrMalformed, o.Index, want[j])
		}
		leaf[o.Index], hashes[j] = o.Value, merkle.LeafHash(o.Value)
	}
	if err := merkle.VerifyMulti(root, y.Leaves(), want, hashes, op.Proof); err != nil {
		return fmt.Errorf("%w: the opening is not under the root: %v", ErrLLMAnswer, err)
	}
	decoded := map[int]*llm.Stage{}
	stage := func(pos, l int) (*llm.Stage, error) {
		if st, ok := decoded[y.Stage(pos, l)]; ok {
			return st, nil
		}
		st, err := DecodeStage(cfg, leaf[y.Stage(pos, l)])
		if err != nil {
			return nil, fmt.Errorf("%w: stage (%d, %d): %v", ErrLLMAnswer, pos, l, err)
		}
		decoded[y.Stage(pos, l)] = st
		return st, nil
	}
	input := func(pos int) int {
		if pos < cfg.Prompt {
			return prompt[pos]
		}
		return tokens[pos-cfg.Prompt]
	}
	d, hd := cfg.Dim, cfg.HeadDim()
	// verifyStage runs llm.VerifyStage on stage (pos, l) with heads, from
	// the key-value leaves of those heads at the earlier positions; checks
	// the stage's own key-value leaves, every head's, against its
	// accumulators; and checks its input.
	verifyStage := func(pos, l int, heads []int) (*llm.Stage, error) {
		st, err := stage(pos, l)
		if err != nil {
			return nil, err
		}
		own, ownV := st.KV(cfg)
		for h := range cfg.Heads {
			lo := h * hd
			if string(leaf[y.KV(l, h, pos)]) != string(EncodeKV(own[lo:lo+hd], ownV[lo:lo+hd])) {
				return nil, fmt.Errorf("%w: stage (%d, %d): its key-value leaf for head %d is not its own projections", ErrLLMAnswer, pos, l, h)
			}
		}
		keys, values := make([][]int8, pos), make([][]int8, pos)
		kbuf, vbuf := make([]int8, pos*d), make([]int8, pos*d)
		for j := range pos {
			keys[j], values[j] = kbuf[j*d:(j+1)*d:(j+1)*d], vbuf[j*d:(j+1)*d:(j+1)*d]
		}
		for _, h := range heads {
			lo := h * hd
			for j := range pos {
				b := leaf[y.KV(l, h, j)]
				if len(b) != 2*hd {
					return nil, fmt.Errorf("%w: key-value leaf (%d, %d, %d) of %d bytes", ErrLLMAnswer, l, h, j, len(b))
				}
				for e := range hd {
					keys[j][lo+e], values[j][lo+e] = int8(b[e]), int8(b[hd+e])
				}
			}
		}
		if err := llm.VerifyStage(w, p, pos, l, st, keys, values, heads); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrLLMAnswer, err)
		}
		if l == 0 {
			if err := llm.VerifyInput(w, pos, input(pos), st.XIn); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrLLMAnswer, err)
			}
			return st, nil
		}
		below, err := stage(pos, l-1)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(below.XOut, st.XIn) {
			return nil, fmt.Errorf("%w: stage (%d, %d): its input is not layer %d's output", ErrLLMAnswer, pos, l, l-1)
		}
		return st, nil
	}
	plan, err := llmStagePlan(cfg, checks)
	if err != nil {
		return err
	}
	// Every stage the checks name is verified once, on the union of the
	// heads they name: a stage check landing in a link's column adds only
	// its head's attention, if the link does not already recompute it.
	verified := make(map[[2]int]*llm.Stage, len(plan))
	for _, s := range plan {
		st, err := verifyStage(s.pos, s.layer, s.heads)
		if err != nil {
			return err
		}
		verified[[2]int{s.pos, s.layer}] = st
	}
	for _, k := range checks {
		if k.Link < 0 {
			continue
		}
		b := leaf[y.Token(k.Link)]
		if len(b) != 4*cfg.Vocab+4 {
			return fmt.Errorf("%w: token leaf %d of %d bytes", ErrLLMAnswer, k.Link, len(b))
		}
		logits := make([]int32, cfg.Vocab)
		for i := range logits {
			logits[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		if tok := int(binary.LittleEndian.Uint32(b[4*cfg.Vocab:])); tok != tokens[k.Link] {
			return fmt.Errorf("%w: token leaf %d holds %d, the answer says %d", ErrLLMAnswer, k.Link, tok, tokens[k.Link])
		}
		last := verified[[2]int{cfg.Prompt - 1 + k.Link, cfg.Layers - 1}]
		if err := llm.VerifyToken(w, p, last.XOut, logits, tokens[k.Link]); err != nil {
			return fmt.Errorf("%w: link %d: %v", ErrLLMAnswer, k.Link, err)
		}
		if k.Link < cfg.Decode-1 {
			next, err := stage(cfg.Prompt+k.Link, 0)
			if err != nil {
				return err
			}
			if err := llm.VerifyInput(w, cfg.Prompt+k.Link, tokens[k.Link], next.XIn); err != nil {
				return fmt.Errorf("%w: link %d: %v", ErrLLMAnswer, k.Link, err)
			}
		}
	}
	return nil
}

// llmStage is one stage a set of checks verifies, with the heads whose
// attention they recompute (sorted, distinct).
type llmStage struct {
	pos, layer int
	heads      []int
}

// llmStagePlan returns the stages checks verify, each once, by increasing
// leaf index, with the union of the heads the checks name on it: a stage
// check's stage with its head; a link's column, position P − 1 + Link,
// the last layer on every head and each layer below on its head (a head
// forged in the last layer would steer the token: an attack review
// steered one past 200 better-ranked tokens, escaping 96 % of challenges
// that checked one head of sampled stages only; a forged stage output
// below it, pointing the stream at any token, cost O(D) and escaped 84 %
// of challenges when only the last layer was verified). It returns an
// error wrapping ErrMalformed for a check outside the task.
func llmStagePlan(cfg llm.Config, checks []LLMCheck) ([]llmStage, error) {
	heads := map[[2]int]uint64{} // (pos, layer) → bit set of heads
	add := func(pos, l, h int) {
		heads[[2]int{pos, l}] |= 1 << h
	}
	if cfg.Heads > 64 {
		return nil, fmt.Errorf("%w: %d heads, at most 64", ErrMalformed, cfg.Heads)
	}
	for _, k := range checks {
		if k.Link >= 0 {
			if k.Link >= cfg.Decode {
				return nil, fmt.Errorf("%w: link %d of %d", ErrMalformed, k.Link, cfg.Decode)
			}
			if len(k.Heads) != cfg.Layers-1 {
				return nil, fmt.Errorf("%w: link %d names %d heads for %d layers below the last", ErrMalformed, k.Link, len(k.Heads), cfg.Layers-1)
			}
			pos := cfg.Prompt - 1 + k.Link
			for l, h := range k.Heads {
				if h < 0 || h >= cfg.Heads {
					return nil, fmt.Errorf("%w: link %d: head %d of %d", ErrMalformed, k.Link, h, cfg.Heads)
				}
				add(pos, l, h)
			}
			for h := range cfg.Heads {
				add(pos, cfg.Layers-1, h)
			}
			continue
		}
		if k.Pos < 0 || k.Pos >= cfg.Positions() || k.Layer < 0 || k.Layer >= cfg.Layers || k.Head < 0 || k.Head >= cfg.Heads {
			return nil, fmt.Errorf("%w: check %+v outside the task", ErrMalformed, k)
		}
		add(k.Pos, k.Layer, k.Head)
	}
	plan := make([]llmStage, 0, len(heads))
	for s, set := range heads {
		st := llmStage{pos: s[0], layer: s[1]}
		for h := range cfg.Heads {
			if set&(1<<h) != 0 {
				st.heads = append(st.heads, h)
			}
		}
		plan = append(plan, st)
	}
	slices.SortFunc(plan, func(a, b llmStage) int {
		return cmp.Or(cmp.Compare(a.pos, b.pos), cmp.Compare(a.layer, b.layer))
	})
	return plan, nil
}

// LLMVerifierWork is the multiply-adds VerifyLLM spends on one
// challenge's checks, by kind. The verifier's projection of the weights
// (llm.WeightMACs) is not in it: it is made once per weight seed and
// shared by every challenge on the model.
type LLMVerifierWork struct {
	// Stages is how many distinct stages the checks verify, and Heads
	// how many (stage, head) attentions they recompute.
	Stages, Heads int
	// Freivalds is the stages' Freivalds dot products
	// (llm.StageFreivaldsMACs each).
	Freivalds float64
	// Attention is the recomputed attention (llm.AttentionMACs).
	Attention float64
	// Logits is the links' logits check, V + D each (the argmax is
	// comparisons).
	Logits float64
}

// Total returns the multiply-adds of every kind.
func (w LLMVerifierWork) Total() float64 { return w.Freivalds + w.Attention + w.Logits }

// LLMVerifierCost returns the work VerifyLLM spends on checks: each stage
// the checks name verified once (llmStagePlan), and each link's logits.
// Malformed checks, which VerifyLLM refuses, count nothing.
func LLMVerifierCost(cfg llm.Config, checks []LLMCheck) LLMVerifierWork {
	plan, err := llmStagePlan(cfg, checks)
	if err != nil {
		return LLMVerifierWork{}
	}
	var w LLMVerifierWork
	for _, s := range plan {
		w.Stages++
		w.Heads += len(s.heads)
		w.Freivalds += llm.StageFreivaldsMACs(cfg)
		w.Attention += llm.AttentionMACs(cfg, s.pos, len(s.heads))
	}
	for _, k := range checks {
		if k.Link >= 0 {
			w.Logits += float64(cfg.Vocab + cfg.Dim)
		}
	}
	return w
}

// LLMVerifierMACs returns the multiply-adds VerifyLLM spends on checks
// (LLMVerifierCost's total): the verifier's work per challenge, apart
// from the projection it computes once per weight seed (llm.WeightMACs).
func LLMVerifierMACs(cfg llm.Config, checks []LLMCheck) float64 {
	return LLMVerifierCost(cfg, checks).Total()
}

// LLMAnticipated returns the time a device with int8 rate int8OPS
// (operations per second, 2 per multiply-add) and memory bandwidth
// bandwidth (bytes per second; 0: unknown, compute-bound) needs for a
// task of cfg, as a server runs it: the prompt as one batched prefill,
// bound by compute, then each decode step bound by the larger of its
// compute and its memory traffic (every weight and the KV cache read
// once per token: at small batch, decoding is memory-bound).
func LLMAnticipated(cfg llm.Config, int8OPS, bandwidth float64) time.Duration {
	d, f, v := float64(cfg.Dim), float64(cfg.FFN), float64(cfg.Vocab)
	L := float64(cfg.Layers)
	weights := L*(4*d*d+2*d*f) + d*v
	step := func(pos int) float64 { return L*(4*d*d+2*d*f+2*d*float64(pos+1)) + d*v }
	var prefill float64
	for pos := range cfg.Prompt {
		prefill += L * (4*d*d + 2*d*f + 2*d*float64(pos+1))
	}
	if cfg.Decode > 0 {
		prefill += d * v // the first token's logits
	}
	secs := 2 * prefill / int8OPS
	for pos := cfg.Prompt; pos < cfg.Positions(); pos++ {
		t := 2 * step(pos) / int8OPS
		if bandwidth > 0 {
			t = max(t, (weights+L*2*d*float64(pos+1))/bandwidth)
		}
		secs += t
	}
	return time.Duration(secs * float64(time.Second))
}
