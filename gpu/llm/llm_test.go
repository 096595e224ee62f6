package llm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/poai-network/poai/gpu"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json from this implementation")

func TestISqrt(t *testing.T) {
	check := func(v int64) {
		r := ISqrt(v)
		if u, w := uint64(r), uint64(v); r < 0 || u*u > w || (u+1)*(u+1) <= w {
			t.Fatalf("ISqrt(%d) = %d", v, r)
		}
	}
	for v := range int64(70000) {
		check(v)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		check(rng.Int64N(1 << 62))
	}
	check(math.MaxInt64)
	if ISqrt(-5) != 0 {
		t.Fatal("ISqrt of a negative is not 0")
	}
}

func TestFloorDivAndRequant(t *testing.T) {
	for _, c := range []struct{ a, b, want int64 }{{7, 2, 3}, {-7, 2, -4}, {-8, 2, -4}, {0, 3, 0}, {-1, 32, -1}} {
		if got := FloorDiv(c.a, c.b); got != c.want {
			t.Errorf("FloorDiv(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for _, c := range []struct {
		acc  int64
		s    uint
		want int8
	}{{3, 1, 2}, {-3, 1, -1}, {-5, 2, -1}, {1 << 20, 4, 127}, {-(1 << 20), 4, -128}, {1535, 10, 1}, {1536, 10, 2}} {
		if got := Requant(c.acc, c.s); got != c.want {
			t.Errorf("Requant(%d, %d) = %d, want %d", c.acc, c.s, got, c.want)
		}
	}
}

// The tables are the spec's: their hashes are in docs/llm-spec.md.
func TestTables(t *testing.T) {
	exp := Exp2Table()
	if exp[0] != 65536 || exp[255] != 32857 {
		t.Fatalf("exp2 table ends %d, %d; want 65536, 32857", exp[0], exp[255])
	}
	for f := 1; f < ExpFrac; f++ {
		if exp[f] >= exp[f-1] {
			t.Fatalf("exp2 table not decreasing at %d", f)
		}
	}
	g := GELUTable()
	if GELU(0) != 0 || GELU(127) != 127 || GELU(-128) != 0 || GELU(32) != 27 {
		t.Fatalf("gelu(0, 127, -128, 32) = %d %d %d %d", GELU(0), GELU(127), GELU(-128), GELU(32))
	}
	t.Logf("exp2 table sha256 %s, gelu table sha256 %s", tableHash(exp[:]), hex.EncodeToString(sum8(g[:])))
	if got, want := tableHash(exp[:]), goldenFile(t).Exp2Table; got != want && !*update {
		t.Errorf("exp2 table hash %s, golden %s", got, want)
	}
	if got, want := hex.EncodeToString(sum8(g[:])), goldenFile(t).GELUTable; got != want && !*update {
		t.Errorf("gelu table hash %s, golden %s", got, want)
	}
}

// tableHash is SHA-256 of the table as little-endian uint32s.
func tableHash(v []int64) string {
	h := sha256.New()
	for _, x := range v {
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(x)))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sum8(v []int8) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	s := sha256.Sum256(b)
	return s[:]
}

func TestSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		n := 1 + rng.IntN(300)
		s, p := make([]int64, n), make([]int64, n)
		for j := range s {
			s[j] = rng.Int64N(1<<20) - 1<<19
		}
		Softmax(p, s, 3)
		var sum int64
		best := slices.Index(s, slices.Max(s))
		for j := range p {
			if p[j] < 0 || p[j] > p[best] {
				t.Fatalf("p[%d] = %d, max %d", j, p[j], p[best])
			}
			sum += p[j]
		}
		if sum > 1<<ProbBits || sum < 1<<ProbBits-int64(n) {
			t.Fatalf("probabilities of %d scores sum to %d, want (2^15 − n, 2^15]", n, sum)
		}
	}
}

func seed(i byte) gpu.Seed {
	return gpu.Seed(sha256.Sum256([]byte{'l', 'l', 'm', i}))
}

func run(t *testing.T, cfg Config, ws, ps gpu.Seed) *Result {
	t.Helper()
	w, err := NewWeights(cfg, ws)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), w, PromptTokens(cfg, ps))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Hidden states keep their spread through the layers: a collapsed model
// (every position alike, or activations saturated) would let a prover
// guess them.
func TestHiddenStatesSpread(t *testing.T) {
	cfg := DevnetConfig
	r := run(t, cfg, seed(1), seed(2))
	distinct := map[[32]byte]bool{}
	a := make([]int8, cfg.Dim)
	var saturated, zero, total int
	for _, h := range r.Hidden {
		var b []byte
		for _, v := range h {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
		distinct[sha256.Sum256(b)] = true
		LayerNorm(a, h)
		for _, v := range a {
			total++
			switch {
			case v == 127 || v == -128:
				saturated++
			case v == 0:
				zero++
			}
		}
		var mean, sq float64
		for _, v := range h {
			mean += float64(v)
		}
		mean /= float64(len(h))
		for _, v := range h {
			sq += (float64(v) - mean) * (float64(v) - mean)
		}
		if sd := math.Sqrt(sq / float64(len(h))); sd < 16 {
			t.Fatalf("a position's residual stream has deviation %.1f: collapsed", sd)
		}
	}
	if len(distinct) != len(r.Hidden) {
		t.Fatalf("%d distinct hidden states over %d positions", len(distinct), len(r.Hidden))
	}
	if saturated*100 > total || zero*20 > total {
		t.Fatalf("final LayerNorm outputs: %d of %d saturated, %d zero", saturated, total, zero)
	}
}

// Greedy decoding does not fall into a loop: a looping decode could be
// guessed and run as one batched prefill.
func TestDecodeDoesNotLoop(t *testing.T) {
	cfg := DevnetConfig
	cfg.Decode = 64
	for i := range byte(3) {
		r := run(t, cfg, seed(10+i), seed(20+i))
		toks := r.Tokens
		if len(toks) != cfg.Decode {
			t.Fatalf("%d tokens, want %d", len(toks), cfg.Decode)
		}
		distinct := map[int]bool{}
		for _, x := range toks {
			distinct[x] = true
		}
		if len(distinct) < cfg.Decode/2 {
			t.Errorf("seed %d: %d distinct tokens of %d: %v", i, len(distinct), cfg.Decode, toks)
		}
		tail := toks[cfg.Decode/2:]
		for p := 1; p <= 8; p++ {
			periodic := true
			for j := p; j < len(tail); j++ {
				periodic = periodic && tail[j] == tail[j-p]
			}
			if periodic {
				t.Errorf("seed %d: the second half of the decode repeats with period %d: %v", i, p, toks)
			}
		}
	}
}

type golden struct {
	Exp2Table string       `json:"exp2_table_sha256"`
	GELUTable string       `json:"gelu_table_sha256"`
	Config    Config       `json:"config"`
	Cases     []goldenCase `json:"cases"`
}

type goldenCase struct {
	WeightSeed string `json:"weight_seed"`
	PromptSeed string `json:"prompt_seed"`
	Prompt     []int  `json:"prompt"`
	Tokens     []int  `json:"tokens"`
	HiddenHash string `json:"hidden_sha256"`
}

const goldenPath = "testdata/golden.json"

func goldenFile(t *testing.T) golden {
	t.Helper()
	var g golden
	b, err := os.ReadFile(goldenPath)
	if errors.Is(err, os.ErrNotExist) && *update {
		return g
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestGolden: the reference reproduces the committed tokens and hidden-
// state hashes for three seeds (what every backend must match).
func TestGolden(t *testing.T) {
	cfg := DevnetConfig
	g := golden{Config: cfg}
	exp, gl := Exp2Table(), GELUTable()
	g.Exp2Table, g.GELUTable = tableHash(exp[:]), hex.EncodeToString(sum8(gl[:]))
	for i := range byte(3) {
		ws, ps := seed(100+i), seed(200+i)
		r := run(t, cfg, ws, ps)
		h := r.HiddenHash()
		g.Cases = append(g.Cases, goldenCase{WeightSeed: hex.EncodeToString(ws[:]), PromptSeed: hex.EncodeToString(ps[:]),
			Prompt: PromptTokens(cfg, ps), Tokens: r.Tokens, HiddenHash: hex.EncodeToString(h[:])})
	}
	if *update {
		b, _ := json.MarshalIndent(g, "", "  ")
		if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := goldenFile(t)
	if want.Config != cfg {
		t.Fatalf("golden config %+v, DevnetConfig %+v", want.Config, cfg)
	}
	for i, c := range g.Cases {
		w := want.Cases[i]
		if c.HiddenHash != w.HiddenHash || !slices.Equal(c.Tokens, w.Tokens) || !slices.Equal(c.Prompt, w.Prompt) {
			t.Errorf("case %d: tokens %v hidden %s, golden %v %s", i, c.Tokens, c.HiddenHash, w.Tokens, w.HiddenHash)
		}
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	if _, err := NewWeights(Config{Vocab: 1000, Dim: 128, Heads: 4, Layers: 1, FFN: 512, Prompt: 4}, seed(0)); !errors.Is(err, ErrConfig) {
		t.Fatalf("vocab 1000: %v", err)
	}
	cfg := DevnetConfig
	cfg.Layers = 1
	w, err := NewWeights(cfg, seed(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), w, []int{1, 2}); !errors.Is(err, ErrConfig) {
		t.Fatalf("short prompt: %v", err)
	}
	bad := PromptTokens(cfg, seed(1))
	bad[3] = cfg.Vocab
	if _, err := Run(context.Background(), w, bad); !errors.Is(err, ErrConfig) {
		t.Fatalf("token outside the vocabulary: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, w, PromptTokens(cfg, seed(1))); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

func BenchmarkRunDevnet(b *testing.B) {
	w, err := NewWeights(DevnetConfig, seed(1))
	if err != nil {
		b.Fatal(err)
	}
	prompt := PromptTokens(DevnetConfig, seed(2))
	b.ReportMetric(MACs(DevnetConfig), "MACs/op")
	for b.Loop() {
		if _, err := Run(context.Background(), w, prompt); err != nil {
			b.Fatal(err)
		}
	}
}

// Attention reads the whole history: windowed attention (the last few
// positions only) must give other bits, or a prover could skip most of
// the KV cache. At the devnet shape, from position 16 on, at least 90 %
// of the heads put over a tenth of their mass beyond the last 8
// positions, and under a tenth put over 0.9 on one position.
func TestAttentionUsesHistory(t *testing.T) {
	cfg := DevnetConfig
	w, err := NewWeights(cfg, seed(1))
	if err != nil {
		t.Fatal(err)
	}
	s := newState(w)
	var peaky, far, total int
	s.attended = func(pos, _, _ int, p []int64) {
		if pos < 16 {
			return
		}
		total++
		var top, beyond int64
		for j, x := range p {
			top = max(top, x)
			if j < pos-7 {
				beyond += x
			}
		}
		if top*10 > 9<<ProbBits {
			peaky++
		}
		if beyond*10 > 1<<ProbBits {
			far++
		}
	}
	for pos, tok := range PromptTokens(cfg, seed(2)) {
		s.position(pos, tok, nil)
	}
	t.Logf("heads: %d of %d with over a tenth beyond the last 8 positions, %d over 0.9 on one", far, total, peaky)
	if far*10 < 9*total || peaky*10 > total {
		t.Fatalf("attention too local: %d of %d heads reach past the last 8 positions, %d peaky", far, total, peaky)
	}
}
