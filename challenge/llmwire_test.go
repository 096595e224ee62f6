package challenge

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/llm"
)

// llmChallenge returns an llm challenge of the devnet model planned for
// a claim of rate int8 TOPS (no catalog model), in epoch 5 of testClock.
func llmChallenge(t testing.TB, tops float64) (*pb.Challenge, cid.Cid, Plan) {
	t.Helper()
	p := testPlanner()
	p.Target, p.Allowance = 300*time.Millisecond, 100*time.Millisecond
	pl, err := p.Plan(&pb.DeviceClaim{Model: "test CPU", Int8Tops: tops}, pb.Workload_WORKLOAD_LLM)
	if err != nil {
		t.Fatal(err)
	}
	ch, _, _ := newChallenge(t, fixedPeer(t, 4), fixedPeer(t, 3), testClock.Start(5))
	ch.N, ch.K, ch.M = 0, 0, 0
	pl.Apply(ch)
	SetLLMWeights(ch, testClock.Genesis.Unix())
	_, chCID, err := MessageCID(ch)
	if err != nil {
		t.Fatal(err)
	}
	return ch, chCID, pl
}

// TestLLMWire: an llm challenge planned, validated, proved by challenge.Run
// on the CPU, opened and verified as the node does it; each field a
// verifier relies on, changed, fails.
func TestLLMWire(t *testing.T) {
	ch, chCID, pl := llmChallenge(t, 0.004)
	if pl.LLM.Decode < 1 || pl.LLM.Prompt != min(4*pl.LLM.Decode, MaxLLMPrompt) || pl.Anticipated < 150*time.Millisecond {
		t.Fatalf("plan %+v", pl)
	}
	v := NewValidator(DefaultLimits(), testClock, 16)
	b, _ := proto.Marshal(ch)
	if _, _, err := v.Challenge(fixedPeer(t, 4), b, testClock.Start(5)); err != nil {
		t.Fatalf("validator refuses a planned llm challenge: %v", err)
	}
	other := proto.Clone(ch).(*pb.Challenge)
	SetLLMWeights(other, testClock.Genesis.Unix()+1)
	if err := v.workload(other); !errors.Is(err, ErrMalformed) {
		t.Fatalf("another genesis's weights accepted: %v", err)
	}
	prover := fixedPeer(t, 3)
	c, err := Run(context.Background(), gpu.NewCPU(), ch, chCID, prover)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Commitment.GetTokens()) != pl.LLM.Decode || c.Commitment.GetEpoch() != ch.GetEpoch() {
		t.Fatalf("commitment %v", c.Commitment)
	}
	op, err := c.Open(context.Background(), ch, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if len(op.GetMultiProof()) == 0 {
		t.Fatal("no multi-proof")
	}
	ob, _ := proto.Marshal(op)
	if len(ob) > DefaultLimits().MaxOpening/2 {
		t.Fatalf("opening of %d bytes", len(ob))
	}
	verify := func(com *pb.Commitment, op *pb.Opening) Result {
		t.Helper()
		_, comCID, _ := MessageCID(com)
		if op.GetCommitmentCid() != nil {
			op = proto.Clone(op).(*pb.Opening)
			op.CommitmentCid = comCID.Bytes()
		}
		res, err := Verify(context.Background(), gpu.NewCPU(), ch, chCID, com, comCID, op, testSecret)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := verify(c.Commitment, op); res.Verdict != pb.Verdict_VERDICT_PASS {
		t.Fatalf("honest llm answer: %v %s", res.Verdict, res.Reason)
	}
	if pl.LLMLinks != pl.LLM.Decode {
		t.Errorf("%d of %d links checked, where every one fits", pl.LLMLinks, pl.LLM.Decode)
	}
	t.Logf("task %d+%d positions, %d stage checks, %d links; opening %d bytes, anticipated %v, verifier/prover MACs %.4f (bound)",
		pl.LLM.Prompt, pl.LLM.Decode, pl.Openings, pl.LLMLinks, len(ob), pl.Anticipated, pl.VerifierFraction)

	bad := map[string]func(com *pb.Commitment, op *pb.Opening){
		"every token changed": func(com *pb.Commitment, _ *pb.Opening) {
			for i := range com.Tokens {
				com.Tokens[i] = (com.Tokens[i] + 1) % uint32(pl.LLM.Vocab)
			}
		},
		"a token dropped":         func(com *pb.Commitment, _ *pb.Opening) { com.Tokens = com.Tokens[1:] },
		"a token out of vocab":    func(com *pb.Commitment, _ *pb.Opening) { com.Tokens[0] = uint32(pl.LLM.Vocab) },
		"a leaf's value changed":  func(_ *pb.Commitment, op *pb.Opening) { op.Rows[3].Values[5] ^= 1 },
		"a leaf dropped":          func(_ *pb.Commitment, op *pb.Opening) { op.Rows = op.Rows[1:] },
		"a proof hash changed":    func(_ *pb.Commitment, op *pb.Opening) { op.MultiProof[0][0] ^= 1 },
		"a per-leaf proof added":  func(_ *pb.Commitment, op *pb.Opening) { op.Rows[0].Proof = [][]byte{make([]byte, 32)} },
		"the multi-proof missing": func(_ *pb.Commitment, op *pb.Opening) { op.MultiProof = nil },
		"another epoch":           func(_ *pb.Commitment, op *pb.Opening) { op.Epoch++ },
		"leaf count":              func(com *pb.Commitment, _ *pb.Opening) { com.Leaves++ },
		"another prover than the target": func(com *pb.Commitment, op *pb.Opening) {
			com.Prover = []byte(fixedPeer(t, 9))
			op.Prover = com.Prover
		},
	}
	for name, f := range bad {
		com, o := proto.Clone(c.Commitment).(*pb.Commitment), proto.Clone(op).(*pb.Opening)
		f(com, o)
		if res := verify(com, o); res.Verdict == pb.Verdict_VERDICT_PASS {
			t.Errorf("%s: passed", name)
		}
	}
}

// TestLLMWireLimits: a commitment with MaxLLMDecode tokens and every
// share it may list fits MaxCommitment; a challenge asking for more than
// the limits is refused.
func TestLLMWireLimits(t *testing.T) {
	com := &pb.Commitment{ChallengeCid: make([]byte, 36), Prover: make([]byte, 38), MerkleRoot: make([]byte, 32), Leaves: 1 << 20,
		SmClockMhz: 2000, SmClockMaxMhz: 2000, TemperatureC: 90, Signature: make([]byte, 64), Epoch: 1 << 40}
	for range MaxShares {
		com.Shares = append(com.Shares, &pb.Share{ChallengeCid: make([]byte, 36), Verifier: make([]byte, 38), Hash: make([]byte, 32), Signature: make([]byte, 64)})
	}
	for range MaxLLMDecode {
		com.Tokens = append(com.Tokens, MaxLLMVocab-1)
	}
	b, _ := proto.Marshal(com)
	if len(b) > DefaultLimits().MaxCommitment {
		t.Fatalf("largest llm commitment %d bytes, limit %d", len(b), DefaultLimits().MaxCommitment)
	}
	// The devnet model is far too small for a GPU: an H100's longest task
	// within the limits takes well under half any target, and the plan
	// says so rather than time the network.
	if _, err := testPlanner().Plan(&pb.DeviceClaim{Model: "H100 SXM", Count: 1, Int8Tops: 1}, pb.Workload_WORKLOAD_LLM); !errors.Is(err, ErrUnplannable) {
		t.Errorf("an H100 llm plan of the devnet model: %v", err)
	}
	ch, _, _ := llmChallenge(t, 0.004)
	for name, f := range map[string]func(s *pb.LLMShape){
		"decode over the limit":  func(s *pb.LLMShape) { s.Decode = MaxLLMDecode + 1 },
		"prompt over the limit":  func(s *pb.LLMShape) { s.Prompt = MaxLLMPrompt + 1 },
		"dim not a power of two": func(s *pb.LLMShape) { s.Dim = 96 },
		"more links than tokens": func(s *pb.LLMShape) { s.Links = s.Decode + 1 },
		"vocab over the limit":   func(s *pb.LLMShape) { s.Vocab = 2 * MaxLLMVocab },
		"short weight seed":      func(s *pb.LLMShape) { s.WeightSeed = s.WeightSeed[:31] },
	} {
		c := proto.Clone(ch).(*pb.Challenge)
		f(c.Llm)
		if err := NewValidator(DefaultLimits(), testClock, 1).workload(c); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !bytes.Equal(ch.GetLlm().GetWeightSeed(), func() []byte { s := LLMWeightSeed(testClock.Genesis.Unix(), 5); return s[:] }()) {
		t.Fatal("weight seed is not the epoch's")
	}
}

// TestLLMCheckDigests: an llm challenge's check digests are computed from
// the seed alone, the model cut to its first layer on the prompt's first
// positions, and equal the layer-0 stages of the full task; verifiers'
// leaves spread over LLMCheckPositions positions and their digests differ.
func TestLLMCheckDigests(t *testing.T) {
	ch, chCID, _ := llmChallenge(t, 0.004)
	w, prompt, err := LLMTask(ch)
	if err != nil {
		t.Fatal(err)
	}
	_, tr, err := llm.RunTrace(t.Context(), w, prompt)
	if err != nil {
		t.Fatal(err)
	}
	positions := []int{0, 1, 2, LLMCheckPositions - 1}
	got, err := llmCheckValues(t.Context(), ch, positions)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range positions {
		if !bytes.Equal(got[i], EncodeStage(&tr.Stages[j][0])) {
			t.Fatalf("check value at position %d differs from the full task's layer-0 stage", j)
		}
	}
	var verifiers []peer.ID
	for i := range 12 {
		verifiers = append(verifiers, fixedPeer(t, byte(10+i)))
	}
	d, err := CheckDigests(t.Context(), gpu.NewCPU(), ch, chCID, testSecret, verifiers)
	if err != nil {
		t.Fatal(err)
	}
	seen, leaves := map[string]bool{}, map[int]bool{}
	for _, v := range verifiers {
		if len(d[v]) != 32 || seen[string(d[v])] {
			t.Fatalf("digest of %s: %x", v, d[v])
		}
		seen[string(d[v])] = true
		l, ok := CheckLeaf(ch, testSecret, v)
		if !ok || l < 0 || l >= LLMCheckPositions {
			t.Fatalf("check leaf %d, %v", l, ok)
		}
		leaves[l] = true
	}
	if len(leaves) < 2 {
		t.Errorf("12 verifiers' check leaves all at one position")
	}
}
