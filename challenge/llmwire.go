package challenge

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/llm"
)

// The llm workload on the wire (docs/protocol.md, "llm"): a challenge
// names the model and the task in Challenge.llm, the prover commits to
// the root of LLMLayout's leaves with its generated tokens
// (Commitment.tokens), and opens the leaves SampleLLMChecks draws, by
// increasing index, with one multi-proof (Opening.multi_proof).

// Limits of the llm workload every validator applies: the model a
// challenge may name and the task it may ask for. They bound what a
// verifier generates (the weights, MaxLLMWeights bytes, positional rows
// for MaxLLMPrompt + MaxLLMDecode positions included) and what a
// commitment carries (MaxLLMDecode tokens).
const (
	MaxLLMWeights = 64 << 20
	MaxLLMPrompt  = 1024
	MaxLLMDecode  = 256
	MaxLLMVocab   = 1 << 14
	// MaxLLMHeads bounds the attention heads (the verifier's stage plan
	// keeps a head set in 64 bits).
	MaxLLMHeads = 64
)

// LLMConfigOf returns the model and task an llm challenge names, or an
// error wrapping ErrMalformed when it names none or one outside
// llm.Config.Validate, MaxLLMWeights, MaxLLMDecode, MaxLLMVocab or
// MaxLLMHeads, or
// checks that do not fit the task.
func LLMConfigOf(ch *pb.Challenge) (llm.Config, error) {
	s := ch.GetLlm()
	if ch.GetWorkload() != pb.Workload_WORKLOAD_LLM || s == nil {
		return llm.Config{}, fmt.Errorf("%w: not an llm challenge", ErrMalformed)
	}
	cfg := llm.Config{Vocab: int(s.GetVocab()), Dim: int(s.GetDim()), Heads: int(s.GetHeads()), Layers: int(s.GetLayers()),
		FFN: int(s.GetFfn()), Prompt: int(s.GetPrompt()), Decode: int(s.GetDecode())}
	if err := cfg.Validate(); err != nil {
		return llm.Config{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case llmWeightBytes(cfg) > MaxLLMWeights:
		return llm.Config{}, fmt.Errorf("%w: model of %.3g weight bytes, limit %d", ErrMalformed, llmWeightBytes(cfg), MaxLLMWeights)
	case cfg.Prompt > MaxLLMPrompt:
		return llm.Config{}, fmt.Errorf("%w: prompt %d over %d", ErrMalformed, cfg.Prompt, MaxLLMPrompt)
	case cfg.Decode > MaxLLMDecode || cfg.Decode < 1:
		return llm.Config{}, fmt.Errorf("%w: decode %d, want 1..%d", ErrMalformed, cfg.Decode, MaxLLMDecode)
	case cfg.Vocab > MaxLLMVocab:
		return llm.Config{}, fmt.Errorf("%w: vocab %d over %d", ErrMalformed, cfg.Vocab, MaxLLMVocab)
	case cfg.Heads > MaxLLMHeads:
		// The verifier's stage plan keeps a head set in 64 bits: a shape it
		// could not verify must be refused as a challenge, not turned
		// into a BAD_PROOF against an honest prover.
		return llm.Config{}, fmt.Errorf("%w: %d heads over %d", ErrMalformed, cfg.Heads, MaxLLMHeads)
	case ch.GetOpenings() < 1 || int(ch.GetOpenings()) > cfg.Positions()*cfg.Layers:
		return llm.Config{}, fmt.Errorf("%w: %d stage checks of %d stages", ErrMalformed, ch.GetOpenings(), cfg.Positions()*cfg.Layers)
	case s.GetLinks() < 1 || int(s.GetLinks()) > cfg.Decode:
		return llm.Config{}, fmt.Errorf("%w: %d links of %d decoded tokens", ErrMalformed, s.GetLinks(), cfg.Decode)
	}
	return cfg, nil
}

// LLMModelCID names the model an llm challenge runs: the CID (CIDOf) of
// the canonical encoding of an LLMShape holding only the model's
// dimensions and weight seed. Every challenge on one model in one weight
// epoch names the same.
func LLMModelCID(ch *pb.Challenge) (cid.Cid, error) {
	s := ch.GetLlm()
	if s == nil {
		return cid.Undef, fmt.Errorf("%w: not an llm challenge", ErrMalformed)
	}
	_, c, err := MessageCID(&pb.LLMShape{Vocab: s.GetVocab(), Dim: s.GetDim(), Heads: s.GetHeads(), Layers: s.GetLayers(), Ffn: s.GetFfn(), WeightSeed: s.GetWeightSeed()})
	return c, err
}

// weightSeedOf returns the weight seed an llm challenge names, or an
// error wrapping ErrMalformed when it is not 32 bytes.
func weightSeedOf(ch *pb.Challenge) (gpu.Seed, error) {
	b := ch.GetLlm().GetWeightSeed()
	if len(b) != len(gpu.Seed{}) {
		return gpu.Seed{}, fmt.Errorf("%w: weight seed of %d bytes", ErrMalformed, len(b))
	}
	return gpu.Seed(b), nil
}

// SetLLMWeights names in an llm challenge the weight seed of its epoch on
// a network with genesis genesis (Unix seconds): LLMWeightSeed. A
// challenger calls it after Plan.Apply; validators reject any other seed.
func SetLLMWeights(ch *pb.Challenge, genesis int64) {
	if ch.GetLlm() == nil {
		return
	}
	s := LLMWeightSeed(genesis, ch.GetEpoch())
	ch.Llm.WeightSeed = s[:]
}

// llmChecksBound returns the most multiply-adds (LLMVerifierMACs) and
// opening bytes a verifier may face on a task of cfg with stages stage
// checks and links link checks, every check at the last position. The
// bytes count, per kind of leaf, what the checks open but at most every
// leaf of that kind (links share the key-value leaves they read): stage
// leaves (a stage check's stage and the one below; a link's column and
// the next position's layer 0), key-value leaves (a stage's own of every
// head and its head's earlier ones; a link's every head in the last
// layer, one head below), token leaves; 8 bytes of framing per leaf, and
// a multi-proof of at most depth hashes per leaf and one per leaf of the
// tree.
func llmChecksBound(cfg llm.Config, stages, links int) (macs, bytes float64) {
	y := LLMLayout{cfg}
	n, last := float64(cfg.Positions()), float64(cfg.Positions()-1)
	l, h := float64(cfg.Layers), float64(cfg.Heads)
	s, k := float64(stages), float64(links)
	lower := l - 1
	macs = s*llm.StageVerifierMACs(cfg, cfg.Positions()-1, 1) +
		k*(float64(cfg.Vocab+cfg.Dim)+llm.StageVerifierMACs(cfg, cfg.Positions()-1, cfg.Heads)+lower*llm.StageVerifierMACs(cfg, cfg.Positions()-1, 1))
	stageLeaves := min(2*s+k*(l+1), n*l)
	kvLeaves := min(s*(h+last)+k*(h*(last+1)+lower*(h+last)), l*h*n)
	tokenLeaves := min(k, float64(cfg.Decode))
	leaves := stageLeaves + kvLeaves + tokenLeaves
	depth := math.Ceil(math.Log2(float64(y.Leaves()))) + 1
	bytes = stageLeaves*float64(StageBytes(cfg)) + kvLeaves*float64(2*cfg.HeadDim()) + tokenLeaves*(4*float64(cfg.Vocab)+4) +
		8*leaves + 32*min(leaves*depth, float64(y.Leaves()))
	return macs, bytes
}

// llmWeightBytes returns the bytes of a model's weights as a node holds
// them (llmWeightsFor): embeddings, positional rows for the longest task
// the limits allow, every layer's matrices, the vocabulary projection.
func llmWeightBytes(c llm.Config) float64 {
	d, f, v := float64(c.Dim), float64(c.FFN), float64(c.Vocab)
	return 2*v*d + (MaxLLMPrompt+MaxLLMDecode)*d + float64(c.Layers)*(4*d*d+2*d*f)
}

// LLMShapeOf returns the LLMShape of a task: cfg, links checked and the
// weight seed.
func LLMShapeOf(cfg llm.Config, links int, weights gpu.Seed) *pb.LLMShape {
	return &pb.LLMShape{Vocab: uint32(cfg.Vocab), Dim: uint32(cfg.Dim), Heads: uint32(cfg.Heads), Layers: uint32(cfg.Layers),
		Ffn: uint32(cfg.FFN), Prompt: uint32(cfg.Prompt), Decode: uint32(cfg.Decode), Links: uint32(links), WeightSeed: weights[:]}
}

// llmModelKey names a model: its weight seed and dimensions (the task's
// lengths aside: weights do not depend on them).
type llmModelKey struct {
	seed                           gpu.Seed
	vocab, dim, heads, layers, ffn int
}

func modelKey(cfg llm.Config, seed gpu.Seed) llmModelKey {
	return llmModelKey{seed, cfg.Vocab, cfg.Dim, cfg.Heads, cfg.Layers, cfg.FFN}
}

// llmModel is one model's weights, and this process's private Freivalds
// projection of them, made once per weight epoch and shared by every
// challenge that names the model.
type llmModel struct {
	wOnce, pOnce sync.Once
	w            *llm.Weights
	p            *llm.Projection
	wErr, pErr   error
}

// llmModels caches the last few models (a weight epoch's, and the next's
// around a boundary). Weights are about 1.3 MB at the devnet shape.
var (
	llmModels, _ = lru.New[llmModelKey, *llmModel](4)
	llmModelsMu  sync.Mutex
)

func llmModelFor(cfg llm.Config, seed gpu.Seed) *llmModel {
	key := modelKey(cfg, seed)
	llmModelsMu.Lock()
	defer llmModelsMu.Unlock()
	m, ok := llmModels.Get(key)
	if !ok {
		m = &llmModel{}
		llmModels.Add(key, m)
	}
	return m
}

// llmWeightsFor returns the weights of the model cfg and seed name, with
// cfg's task, made once per model and cached (a positional row depends on
// its position only, so one table serves every task length).
func llmWeightsFor(cfg llm.Config, seed gpu.Seed) (*llm.Weights, error) {
	m := llmModelFor(cfg, seed)
	m.wOnce.Do(func() {
		full := cfg
		full.Prompt, full.Decode = MaxLLMPrompt, MaxLLMDecode
		m.w, m.wErr = llm.NewWeights(full, seed)
	})
	if m.wErr != nil {
		return nil, m.wErr
	}
	w := *m.w
	w.Config = cfg
	w.Pos = w.Pos[:(cfg.Prompt+cfg.Decode)*cfg.Dim]
	return &w, nil
}

// llmProjectionFor returns this process's projection of the model cfg and
// seed name (newProjection), made once per model: the W·r a verifier
// computes once per weight epoch (llm.WeightMACs).
func llmProjectionFor(cfg llm.Config, seed gpu.Seed) (*llm.Weights, *llm.Projection, error) {
	w, err := llmWeightsFor(cfg, seed)
	if err != nil {
		return nil, nil, err
	}
	m := llmModelFor(cfg, seed)
	m.pOnce.Do(func() { m.p, m.pErr = newProjection(w) })
	return w, m.p, m.pErr
}

// newProjection draws the verifier's private Freivalds vectors from
// crypto/rand, reduced into GF(2^61 − 1), and projects w with them.
func newProjection(w *llm.Weights) (*llm.Projection, error) {
	c := w.Config
	draw := func(n int) ([]uint64, error) {
		b := make([]byte, 8*n)
		if _, err := crand.Read(b); err != nil {
			return nil, err
		}
		r := make([]uint64, n)
		for i := range r {
			r[i] = binary.LittleEndian.Uint64(b[8*i:]) % gpu.FreivaldsPrime
		}
		return r, nil
	}
	rD, err := draw(c.Dim)
	if err != nil {
		return nil, err
	}
	rF, err := draw(c.FFN)
	if err != nil {
		return nil, err
	}
	rV, err := draw(c.Vocab)
	if err != nil {
		return nil, err
	}
	mix, err := draw(2)
	if err != nil {
		return nil, err
	}
	return llm.Project(w, rD, rF, rV, mix[0], mix[1])
}

// LLMTask returns the weights and the prompt of an llm challenge: the
// model its weight seed names, the prompt its seed draws
// (llm.PromptTokens).
func LLMTask(ch *pb.Challenge) (*llm.Weights, []int, error) {
	cfg, err := LLMConfigOf(ch)
	if err != nil {
		return nil, nil, err
	}
	seed, err := weightSeedOf(ch)
	if err != nil {
		return nil, nil, err
	}
	w, err := llmWeightsFor(cfg, seed)
	if err != nil {
		return nil, nil, err
	}
	return w, llm.PromptTokens(cfg, Seed(ch)), nil
}

// LLMRunner is a backend that runs the llm workload itself (a GPU's
// kernels). Other backends run gpu/llm's reference on the host.
type LLMRunner interface {
	RunLLM(ctx context.Context, w *llm.Weights, prompt []int) (*llm.Trace, []int, error)
}

// occupier is a device that books time for work computed outside its
// Backend methods (gpu.Emulated.Occupy).
type occupier interface {
	Occupy(ctx context.Context, d func(gpu.Budget) time.Duration, f func() error) error
}

// runLLM runs an llm challenge on backend: its own kernels (LLMRunner),
// or the reference on the host, booked on an emulated device for the
// time its budget gives the task (LLMAnticipated at its llm rates).
func runLLM(ctx context.Context, backend gpu.Backend, ch *pb.Challenge, chCID cid.Cid, prover peer.ID) (*Committed, error) {
	w, prompt, err := LLMTask(ch)
	if err != nil {
		return nil, err
	}
	tr, tokens, err := computeLLM(ctx, backend, w, prompt)
	if err != nil {
		return nil, fmt.Errorf("run workload: %w", err)
	}
	return CommitLLM(chCID, prover, w.Config, tr, tokens)
}

// computeLLM runs the task (w, prompt) on backend as runLLM does.
func computeLLM(ctx context.Context, backend gpu.Backend, w *llm.Weights, prompt []int) (tr *llm.Trace, tokens []int, err error) {
	host := func() error {
		res, t, err := llm.RunTrace(ctx, w, prompt)
		if err != nil {
			return err
		}
		tr, tokens = t, res.Tokens
		return nil
	}
	switch b := backend.(type) {
	case LLMRunner:
		tr, tokens, err = b.RunLLM(ctx, w, prompt)
	case occupier:
		err = b.Occupy(ctx, func(bu gpu.Budget) time.Duration {
			return LLMAnticipated(w.Config, cmp.Or(bu.LLMInt8OPS, bu.Int8OPS), bu.LLMBytesPerSec)
		}, host)
	default:
		err = host()
	}
	return tr, tokens, err
}

// llmMeasureTask is the task MeasureLLM times: the devnet model on a
// 64-token prompt with 16 decoded.
var llmMeasureTask = llm.DevnetConfig

// MeasureLLM returns backend's rate on the llm workload in int8 TOPS (2
// operations per multiply-add, llm.MACs): the best of reps runs of
// llmMeasureTask, as a prover runs it (an emulated device at its
// budget). A claim carries it as llm_int8_tops.
func MeasureLLM(ctx context.Context, backend gpu.Backend, reps int) (float64, error) {
	cfg := llmMeasureTask
	w, err := llmWeightsFor(cfg, LLMWeightSeed(0, 0))
	if err != nil {
		return 0, err
	}
	prompt := llm.PromptTokens(cfg, gpu.Seed{1})
	best := time.Duration(math.MaxInt64)
	for range max(reps, 1) {
		start := time.Now()
		if _, _, err := computeLLM(ctx, backend, w, prompt); err != nil {
			return 0, err
		}
		best = min(best, time.Since(start))
	}
	return 2 * llm.MACs(cfg) / best.Seconds() / 1e12, nil
}

// CommitLLM commits to an llm answer (a trace and its generated tokens,
// honest or not: NewLLMAnswer checks shapes only) for challenge chCID.
func CommitLLM(chCID cid.Cid, prover peer.ID, cfg llm.Config, tr *llm.Trace, tokens []int) (*Committed, error) {
	a, err := NewLLMAnswer(cfg, tr, tokens)
	if err != nil {
		return nil, err
	}
	root := a.Root()
	com := &pb.Commitment{ChallengeCid: chCID.Bytes(), Prover: []byte(prover), MerkleRoot: root[:], Leaves: uint32(a.Layout.Leaves())}
	for _, t := range tokens {
		com.Tokens = append(com.Tokens, uint32(t))
	}
	_, comCID, err := MessageCID(com)
	if err != nil {
		return nil, err
	}
	return &Committed{Commitment: com, CommitmentCID: comCID, chCID: chCID, prover: prover, llm: a}, nil
}

// openLLM is Committed.Open for an llm answer.
func (c *Committed) openLLM(ch *pb.Challenge, secret []byte, shares [][]byte) (*pb.Opening, error) {
	a := c.llm
	checks, err := SampleLLMChecks(a.Layout.Cfg, a.Root(), ch.GetNonce(), SamplingSecret(secret, shares), int(ch.GetOpenings()), int(ch.GetLlm().GetLinks()))
	if err != nil {
		return nil, err
	}
	o, err := a.Open(checks)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	op := &pb.Opening{ChallengeCid: c.chCID.Bytes(), CommitmentCid: c.CommitmentCID.Bytes(), Prover: []byte(c.prover), Epoch: ch.GetEpoch()}
	for _, l := range o.Leaves {
		op.Rows = append(op.Rows, &pb.RowOpening{Index: uint32(l.Index), Values: l.Value})
	}
	for _, h := range o.Proof {
		op.MultiProof = append(op.MultiProof, h[:])
	}
	return op, nil
}

// verifyLLM is Verify for an llm challenge: the commitment's tokens, the
// opening's structure (it must name the challenge and commitment), then
// VerifyLLM with this process's private projection. A pass has accuracy
// 1; a wrong answer 0, a malformed opening BAD_PROOF.
func verifyLLM(ch *pb.Challenge, chCID cid.Cid, com *pb.Commitment, comCID cid.Cid, op *pb.Opening, randomness []byte) (Result, error) {
	cfg, err := LLMConfigOf(ch)
	if err != nil {
		return Result{}, err
	}
	bad := func(format string, a ...any) (Result, error) {
		return Result{Verdict: pb.Verdict_VERDICT_BAD_PROOF, Deviation: 1, Reason: fmt.Sprintf(format, a...)}, nil
	}
	switch {
	case !cidEqual(op.GetChallengeCid(), chCID) || !cidEqual(com.GetChallengeCid(), chCID):
		return bad("commitment or opening names another challenge")
	case !cidEqual(op.GetCommitmentCid(), comCID):
		return bad("opening names another commitment")
	case string(op.GetProver()) != string(com.GetProver()):
		return bad("opening by another prover than the commitment's")
	case string(com.GetProver()) != string(ch.GetTarget()):
		return bad("commitment by another prover than the challenge's target")
	case op.GetEpoch() != ch.GetEpoch() || com.GetEpoch() != ch.GetEpoch():
		return bad("commitment or opening names another epoch than the challenge")
	case len(com.GetMerkleRoot()) != len(merkle.Hash{}):
		return bad("root of %d bytes", len(com.GetMerkleRoot()))
	case int(com.GetLeaves()) != LLMLayout{cfg}.Leaves():
		return bad("commitment of %d leaves, the task has %d", com.GetLeaves(), LLMLayout{cfg}.Leaves())
	case len(com.GetTokens()) != cfg.Decode:
		return bad("commitment of %d tokens, the task decodes %d", len(com.GetTokens()), cfg.Decode)
	}
	tokens := make([]int, len(com.GetTokens()))
	for i, t := range com.GetTokens() {
		if int(t) >= cfg.Vocab {
			return bad("token %d is %d, outside the vocabulary of %d", i, t, cfg.Vocab)
		}
		tokens[i] = int(t)
	}
	var root merkle.Hash
	copy(root[:], com.GetMerkleRoot())
	checks, err := SampleLLMChecks(cfg, root, ch.GetNonce(), randomness, int(ch.GetOpenings()), int(ch.GetLlm().GetLinks()))
	if err != nil {
		return Result{}, err
	}
	o := &LLMOpening{}
	for _, r := range op.GetRows() {
		if len(r.GetProof()) != 0 {
			return bad("leaf %d carries its own proof; an llm opening has one multi-proof", r.GetIndex())
		}
		o.Leaves = append(o.Leaves, OpenedLeaf{Index: int(r.GetIndex()), Value: r.GetValues()})
	}
	for _, h := range op.GetMultiProof() {
		if len(h) != len(merkle.Hash{}) {
			return bad("multi-proof hash of %d bytes", len(h))
		}
		o.Proof = append(o.Proof, merkle.Hash(h))
	}
	seed, err := weightSeedOf(ch)
	if err != nil {
		return Result{}, err
	}
	w, p, err := llmProjectionFor(cfg, seed)
	if err != nil {
		return Result{}, err
	}
	err = VerifyLLM(w, p, llm.PromptTokens(cfg, Seed(ch)), root, tokens, checks, o)
	switch {
	case err == nil:
		return Result{Verdict: pb.Verdict_VERDICT_PASS, Accuracy: 1}, nil
	case errors.Is(err, ErrMalformed):
		return bad("%v", err)
	case errors.Is(err, ErrLLMAnswer):
		return Result{Verdict: pb.Verdict_VERDICT_WRONG_ANSWER, Deviation: 1, Reason: err.Error()}, nil
	}
	return Result{}, err
}

// llmCheckValues returns, for each position j of positions, the layer-0
// stage of an llm challenge at prompt position j (EncodeStage), from the
// seed alone: the model cut to its first layer (whose weights are the full
// model's layer 0: every matrix is drawn by its kind and layer) run on the
// prompt's first max(positions) + 1 tokens, without decoding.
func llmCheckValues(ctx context.Context, ch *pb.Challenge, positions []int) ([][]byte, error) {
	cfg, err := LLMConfigOf(ch)
	if err != nil {
		return nil, err
	}
	seed, err := weightSeedOf(ch)
	if err != nil {
		return nil, err
	}
	last := 0
	for _, j := range positions {
		if j < 0 || j >= cfg.Prompt {
			return nil, fmt.Errorf("%w: check position %d of a %d-token prompt", ErrMalformed, j, cfg.Prompt)
		}
		last = max(last, j)
	}
	cut := cfg
	cut.Layers, cut.Prompt, cut.Decode = 1, last+1, 0
	w, err := llmWeightsFor(cut, seed)
	if err != nil {
		return nil, err
	}
	_, tr, err := llm.RunTrace(ctx, w, llm.PromptTokens(cfg, Seed(ch))[:last+1])
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(positions))
	for i, j := range positions {
		out[i] = EncodeStage(&tr.Stages[j][0])
	}
	return out, nil
}
