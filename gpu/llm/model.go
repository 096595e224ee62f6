// Package llm is the reference implementation of poai's integer
// transformer (docs/llm-spec.md): a decoder-only model whose weights are
// drawn from a seed, run on a seeded prompt with greedy decoding, in
// integer arithmetic only (int8 weights and activations, int32 and int64
// accumulation, integer LayerNorm, softmax and GELU after I-BERT, Kim et
// al., ICML 2021), so that every backend computes the same bits. It knows
// no protocol: what a challenge commits to and opens is challenge's.
package llm

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/poai-network/poai/gpu"
)

// Config is a model's shape and the length of its task.
type Config struct {
	// Vocab is the vocabulary size V (a power of two, 2..65536).
	Vocab int `json:"vocab"`
	// Dim is the model width D = Heads·HeadDim (a power of two).
	Dim int `json:"dim"`
	// Heads is the number of attention heads H; HeadDim = Dim/Heads must
	// be a power of two.
	Heads int `json:"heads"`
	// Layers is the number of transformer blocks L.
	Layers int `json:"layers"`
	// FFN is the feed-forward width F (a power of two).
	FFN int `json:"ffn"`
	// Prompt is the prompt length P ≥ 1, in tokens.
	Prompt int `json:"prompt"`
	// Decode is the number of tokens T ≥ 0 greedy decoding generates.
	Decode int `json:"decode"`
}

// DevnetConfig is the shape devnet nodes run: about 0.07 GMAC per task on
// one core.
var DevnetConfig = Config{Vocab: 1024, Dim: 128, Heads: 4, Layers: 4, FFN: 512, Prompt: 64, Decode: 16}

// MaxPositions bounds Prompt + Decode: the attention sums stay within
// int64 and the tables within a node's memory.
const MaxPositions = 1 << 14

// ErrConfig reports a shape the spec does not allow.
var ErrConfig = errors.New("invalid llm config")

// HeadDim returns Dim/Heads.
func (c Config) HeadDim() int { return c.Dim / max(c.Heads, 1) }

// Positions returns the positions a task runs the model at: the prompt's
// and every decoded token's but the last, P + T − 1 (P when T = 0).
func (c Config) Positions() int { return c.Prompt + max(c.Decode-1, 0) }

// Validate returns an error wrapping ErrConfig when a dimension is out
// of the spec's range.
func (c Config) Validate() error {
	pow2 := func(n int) bool { return n > 0 && n&(n-1) == 0 }
	switch {
	case !pow2(c.Vocab) || c.Vocab < 2 || c.Vocab > 1<<16:
		return fmt.Errorf("%w: vocab %d is not a power of two in [2, 65536]", ErrConfig, c.Vocab)
	case !pow2(c.Dim) || c.Dim > gpu.MaxK:
		return fmt.Errorf("%w: dim %d is not a power of two ≤ %d", ErrConfig, c.Dim, gpu.MaxK)
	case c.Heads <= 0 || c.Dim%c.Heads != 0 || !pow2(c.HeadDim()):
		return fmt.Errorf("%w: %d heads do not split dim %d into powers of two", ErrConfig, c.Heads, c.Dim)
	case c.Layers <= 0 || c.Layers > 256:
		return fmt.Errorf("%w: %d layers, want 1..256", ErrConfig, c.Layers)
	case !pow2(c.FFN) || c.FFN > gpu.MaxK:
		return fmt.Errorf("%w: ffn %d is not a power of two ≤ %d", ErrConfig, c.FFN, gpu.MaxK)
	case c.Prompt < 1 || c.Decode < 0 || c.Prompt+c.Decode > MaxPositions:
		return fmt.Errorf("%w: prompt %d + decode %d, want prompt ≥ 1 and a total ≤ %d", ErrConfig, c.Prompt, c.Decode, MaxPositions)
	}
	return nil
}

// Weight kinds: the low byte of a weight matrix's Philox matrix word
// (MatrixID).
const (
	KindEmbed  uint32 = iota // token embedding, V×D
	KindPos                  // positional embedding, MaxPositions×D (rows drawn as needed)
	KindQ                    // D×D per layer
	KindK                    // D×D per layer
	KindV                    // D×D per layer
	KindO                    // D×D per layer
	KindUp                   // D×F per layer
	KindDown                 // F×D per layer
	KindVocab                // D×V, the unembedding
	KindPrompt               // the prompt's tokens (challenge seed, not weight seed)
)

// MatrixID returns the Philox matrix word of weight kind in layer: "LL"
// (0x4C4C) in the high half, the layer in bits 8–15, the kind in the low
// byte. Layer is 0 for the embeddings, the unembedding and the prompt.
func MatrixID(kind uint32, layer int) uint32 {
	return 0x4C4C0000 | uint32(layer&0xff)<<8 | kind&0xff
}

// Weights is a model drawn from a weight seed. Matrices are row-major
// int8, row i holding the weights from input i (gpu.FillInt8Row of
// MatrixID(kind, layer), row i): y[j] = Σᵢ x[i]·W[i][j].
type Weights struct {
	Config Config
	Seed   gpu.Seed
	Embed  []int8 // V×D
	Pos    []int8 // (P+T)×D: the rows of the positions a task uses
	Layers []Layer
	Vocab  []int8 // D×V
}

// Layer is one transformer block's weights.
type Layer struct {
	Q, K, V, O []int8 // D×D
	Up         []int8 // D×F
	Down       []int8 // F×D
}

// NewWeights draws the weights of cfg from seed. It returns an error
// wrapping ErrConfig for a shape Validate rejects.
func NewWeights(cfg Config, seed gpu.Seed) (*Weights, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d, f := cfg.Dim, cfg.FFN
	draw := func(kind uint32, layer, rows, cols int) []int8 {
		m := make([]int8, rows*cols)
		for i := range rows {
			gpu.FillInt8Row(m[i*cols:(i+1)*cols], seed, MatrixID(kind, layer), i)
		}
		return m
	}
	w := &Weights{Config: cfg, Seed: seed,
		Embed: draw(KindEmbed, 0, cfg.Vocab, d),
		Pos:   draw(KindPos, 0, cfg.Prompt+cfg.Decode, d),
		Vocab: draw(KindVocab, 0, d, cfg.Vocab),
	}
	for l := range cfg.Layers {
		w.Layers = append(w.Layers, Layer{
			Q: draw(KindQ, l, d, d), K: draw(KindK, l, d, d), V: draw(KindV, l, d, d), O: draw(KindO, l, d, d),
			Up: draw(KindUp, l, d, f), Down: draw(KindDown, l, f, d),
		})
	}
	return w, nil
}

// PromptTokens returns the P tokens of the prompt drawn from a challenge
// seed: token i is word i%4 of Philox block (i/4, 0, MatrixID(KindPrompt,
// 0), stream) modulo V.
func PromptTokens(cfg Config, seed gpu.Seed) []int {
	key, stream := seed.PhiloxKey()
	out := make([]int, cfg.Prompt)
	for i := range out {
		blk := gpu.Philox4x32([4]uint32{uint32(i / 4), 0, MatrixID(KindPrompt, 0), stream}, key)
		out[i] = int(blk[i%4] % uint32(cfg.Vocab))
	}
	return out
}

// log2 returns log₂ n for a power of two n.
func log2(n int) int { return bits.TrailingZeros(uint(n)) }

// Shift returns the requantization shift of a product with inner
// dimension k (a power of two): 6 + ⌈log₂k / 2⌉. With int8 inputs of
// standard deviation about 26 (LayerNorm's output) and uniform int8
// weights (about 74), the accumulator's deviation is about 1,900·√k; the
// shift brings it back to about 26.
func Shift(k int) uint { return uint(6 + (log2(k)+1)/2) }

// AttentionShift returns the shift from a head's raw scores q·k to the
// softmax's base-2 exponent in 1/256 units: ⌊log₂d_head / 2⌋ + 1, which
// puts the scores' spread near one unit of log₂ as 1/√d_head does in
// floating point.
func AttentionShift(headDim int) uint { return uint(log2(headDim)/2 + 1) }
