package challenge

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

func newPeer(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var testClock = EpochClock{Genesis: time.Unix(1_700_000_000, 0), Length: 10 * time.Second}

func newChallenge(t testing.TB, challenger, target peer.ID, now time.Time) (*pb.Challenge, []byte, cid.Cid) {
	t.Helper()
	nonce := make([]byte, 32)
	rand.Read(nonce)
	ch := &pb.Challenge{
		Version: 1, Epoch: testClock.At(now), Challenger: []byte(challenger), Target: []byte(target),
		Nonce: nonce, Workload: pb.Workload_WORKLOAD_GEMM_INT8, N: 96, K: 64, M: 32,
		Openings: 20, DeadlineMs: 1000, IssuedUnixMs: now.UnixMilli(), RevealHash: RevealHash(testSecret),
	}
	b, c, err := MessageCID(ch)
	if err != nil {
		t.Fatal(err)
	}
	return ch, b, c
}

type proved struct {
	ch     *pb.Challenge
	chCID  cid.Cid
	com    *pb.Commitment
	comCID cid.Cid
	op     *pb.Opening
}

func prove(t testing.TB) proved {
	t.Helper()
	prover := newPeer(t)
	ch, _, chCID := newChallenge(t, newPeer(t), prover, time.Now())
	com, op, err := Prove(context.Background(), gpu.NewCPU(), ch, chCID, prover, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	_, comCID, _ := MessageCID(com)
	return proved{ch, chCID, com, comCID, op}
}

func (p proved) verify(t *testing.T) Result {
	t.Helper()
	res, err := Verify(context.Background(), gpu.NewCPU(), p.ch, p.chCID, p.com, p.comCID, p.op, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestProveVerifyHonest(t *testing.T) {
	p := prove(t)
	res := p.verify(t)
	if res.Verdict != pb.Verdict_VERDICT_PASS || res.Accuracy != 1 || res.Deviation != 0 {
		t.Fatalf("honest proof: %+v", res)
	}
	if len(p.op.Rows) != 20 {
		t.Fatalf("opened %d rows, want 20", len(p.op.Rows))
	}
}

func TestVerifyRejectsSingleWrongElement(t *testing.T) {
	// A prover that commits to a C with one element off by one is caught
	// when that row is opened: rebuild the commitment over the tampered C.
	prover := newPeer(t)
	ch, _, chCID := newChallenge(t, newPeer(t), prover, time.Now())
	ch.Openings = uint32(ch.N) // open every row so the bad one is surely opened
	c, leaves, err := gpu.NewCPU().MatMulInt8(context.Background(), Seed(ch), ShapeOf(ch))
	if err != nil {
		t.Fatal(err)
	}
	c.Row(37)[5]++
	leaves[37] = gpu.LeafHash(c.Row(37))
	com, op, err := oneShot(ch)(CommitInt8(ch, chCID, prover, c, leaves))
	if err != nil {
		t.Fatal(err)
	}
	_, comCID, _ := MessageCID(com)
	res, err := Verify(context.Background(), gpu.NewCPU(), ch, chCID, com, comCID, op, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != pb.Verdict_VERDICT_WRONG_ANSWER {
		t.Fatalf("verdict %v, want WRONG_ANSWER", res.Verdict)
	}
	if !slices.Equal(res.Wrong, []int{37}) || !strings.HasPrefix(res.Reason, "row 37 of C wrong: 1 of ") {
		t.Fatalf("wrong %v, reason %q: want row 37 named", res.Wrong, res.Reason)
	}
	if want := float64(ch.N-1) / float64(ch.N); res.Accuracy != want {
		t.Fatalf("accuracy %v, want %v", res.Accuracy, want)
	}
	if res.Deviation <= 0 {
		t.Fatalf("deviation %v, want > 0", res.Deviation)
	}
}

func TestVerifyRejectsTampering(t *testing.T) {
	cases := map[string]func(p *proved){
		"value changed after commit": func(p *proved) { p.op.Rows[3].Values[0] ^= 1 },
		"proof hash changed":         func(p *proved) { p.op.Rows[0].Proof[0][0] ^= 1 },
		"row dropped":                func(p *proved) { p.op.Rows = p.op.Rows[1:] },
		"rows swapped":               func(p *proved) { p.op.Rows[0], p.op.Rows[1] = p.op.Rows[1], p.op.Rows[0] },
		"row truncated":              func(p *proved) { p.op.Rows[2].Values = p.op.Rows[2].Values[:8] },
		"other challenge": func(p *proved) {
			_, _, other := newChallenge(t, newPeer(t), newPeer(t), time.Now())
			p.op.ChallengeCid = other.Bytes()
		},
		"root replaced": func(p *proved) {
			p.com.MerkleRoot = make([]byte, 32)
			_, p.comCID, _ = MessageCID(p.com)
			p.op.CommitmentCid = p.comCID.Bytes()
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			p := prove(t)
			tamper(&p)
			if res := p.verify(t); res.Verdict == pb.Verdict_VERDICT_PASS {
				t.Fatalf("tampered opening passed: %+v", res)
			}
		})
	}
}

func TestReplayedAnswerFails(t *testing.T) {
	// An answer computed for one challenge, relabelled for another.
	p := prove(t)
	ch2, _, ch2CID := newChallenge(t, newPeer(t), peer.ID(p.ch.Target), time.Now())
	c, leaves, _ := gpu.NewCPU().MatMulInt8(context.Background(), Seed(p.ch), ShapeOf(p.ch))
	com, op, _ := oneShot(ch2)(CommitInt8(ch2, ch2CID, peer.ID(p.ch.Target), c, leaves))
	_, comCID, _ := MessageCID(com)
	res, err := Verify(context.Background(), gpu.NewCPU(), ch2, ch2CID, com, comCID, op, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != pb.Verdict_VERDICT_WRONG_ANSWER || res.Accuracy > 0.1 {
		t.Fatalf("replayed answer: %+v", res)
	}
}

func TestSampleRows(t *testing.T) {
	var root [32]byte
	a, err := SampleRows(root, []byte("nonce"), testSecret, 100, 66)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, i := range a {
		if i < 0 || i >= 100 || seen[i] {
			t.Fatalf("bad or repeated index %d", i)
		}
		seen[i] = true
	}
	root[0] = 1
	b, _ := SampleRows(root, []byte("nonce"), testSecret, 100, 66)
	if equalInts(a, b) {
		t.Fatal("indices do not depend on the root")
	}
	if _, err := SampleRows(root, nil, nil, 5, 6); err == nil {
		t.Fatal("sampling more rows than exist succeeded")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpeningsFor(t *testing.T) {
	if got := OpeningsFor(0.9, 0.001); got != 66 {
		t.Fatalf("OpeningsFor(0.9, 0.001) = %d, want 66", got)
	}
	s := OpeningsFor(0.5, 1e-9)
	if p := pow(0.5, s); p > 1e-9 || pow(0.5, s-1) <= 1e-9 {
		t.Fatalf("s=%d is not the smallest with 0.5^s <= 1e-9 (%g)", s, p)
	}
}

func pow(x float64, n int) float64 {
	r := 1.0
	for range n {
		r *= x
	}
	return r
}

func testPlanner() Planner {
	return Planner{Target: time.Second, Slack: 2, Allowance: 100 * time.Millisecond, Openings: 66,
		Int8K: 512, Int8M: 512, BF16K: 128, BF16M: 128, MaxRows: 1 << 22, MaxVerifierFraction: 0.01,
		VRAM: DefaultVRAMSizing(), Efficiency: DefaultEfficiency, Limits: DefaultLimits()}
}

// TestPlanGPUScale: a fast claim gets a product big enough to take about
// the target time within the protocol's limits, or ErrUnplannable — never a
// deadline that is mostly allowance. A single product within today's
// limits keep a catalog H200 busy for the 2 s target with a streamed int8
// product (A and C never held), within the validator's limits; bf16, whose
// verifier recomputes whole rows, cannot reach GPU scale within them.
func TestPlanGPUScale(t *testing.T) {
	p := testPlanner()
	p.Target, p.Allowance, p.Slack = 2*time.Second, 500*time.Millisecond, 2.5
	fast := &pb.DeviceClaim{Model: "some accelerator", Int8Tops: 20}
	pl, err := p.Plan(fast, pb.Workload_WORKLOAD_GEMM_INT8)
	if err != nil {
		t.Fatal(err)
	}
	if pl.Anticipated < time.Second || pl.Anticipated > 3*time.Second {
		t.Fatalf("20-TOPS int8 plan %+v: anticipated %v for a 2 s target", pl.Shape, pl.Anticipated)
	}
	ch := &pb.Challenge{}
	pl.Apply(ch)
	if err := NewValidator(DefaultLimits(), testClock, 1).workload(ch); err != nil {
		t.Fatalf("the plan breaks the validator's limits: %v", err)
	}
	if !pl.Matches(ch) {
		t.Fatal("a plan does not match its own challenge")
	}
	t.Logf("20 TOPS int8: %+v anticipated %v deadline %v verifier %.2g", pl.Shape, pl.Anticipated, pl.Deadline, pl.VerifierFraction)
	h200 := &pb.DeviceClaim{Model: "NVIDIA H200", Count: 1}
	hp, err := p.Plan(h200, pb.Workload_WORKLOAD_GEMM_INT8)
	if err != nil {
		t.Fatalf("H200 int8: %v", err)
	}
	if hp.Anticipated < 1900*time.Millisecond || hp.Anticipated > 2100*time.Millisecond {
		t.Fatalf("H200 int8 plan %+v anticipates %v, want about 2 s", hp.Shape, hp.Anticipated)
	}
	hch := &pb.Challenge{}
	hp.Apply(hch)
	if err := NewValidator(DefaultLimits(), testClock, 1).workload(hch); err != nil {
		t.Fatalf("the H200 plan breaks the validator's limits: %v", err)
	}
	t.Logf("H200 int8: %+v anticipated %v deadline %v", hp.Shape, hp.Anticipated, hp.Deadline)
	if pl, err := p.Plan(h200, pb.Workload_WORKLOAD_GEMM_BF16); !errors.Is(err, ErrUnplannable) {
		t.Fatalf("H200 bf16: got %+v, %v; want ErrUnplannable", pl, err)
	}
	big := &pb.DeviceClaim{Model: "x", HashGhps: 100, VramBytes: 300e9}
	vp, err := p.Plan(big, pb.Workload_WORKLOAD_VRAM)
	if err != nil {
		t.Fatal(err)
	}
	if fill := float64(vp.VRAM.Bytes()) / 300e9; fill < 0.92 || fill > 0.93 {
		t.Fatalf("300 GB claim tested %.2f of its memory: %+v", fill, vp.VRAM)
	}
	// Past about 560 GB a VRAM proof would cost a verifier more than
	// MaxVerifyHashes: unplannable, not a challenge the validators reject.
	if vp, err := p.Plan(&pb.DeviceClaim{Model: "x", HashGhps: 100, VramBytes: 600e9}, pb.Workload_WORKLOAD_VRAM); !errors.Is(err, ErrUnplannable) {
		t.Fatalf("600 GB claim: got %+v, %v; want ErrUnplannable", vp.VRAM, err)
	}
}

func TestPlan(t *testing.T) {
	p := testPlanner()
	cpu := &pb.DeviceClaim{Model: "devnet CPU", Int8Tops: 0.01, Bf16Tflops: 0.004, HashGhps: 0.005, VramBytes: 1 << 20}
	for _, w := range []pb.Workload{pb.Workload_WORKLOAD_GEMM_INT8, pb.Workload_WORKLOAD_GEMM_BF16, pb.Workload_WORKLOAD_VRAM} {
		pl, err := p.Plan(cpu, w)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Anticipated < 500*time.Millisecond || pl.Anticipated > 3*time.Second {
			t.Errorf("%v: anticipated %v for a 1 s target (%+v)", w, pl.Anticipated, pl)
		}
		if want := time.Duration(float64(pl.Anticipated)*2) + 100*time.Millisecond; pl.Deadline != want {
			t.Errorf("%v: deadline %v, want %v", w, pl.Deadline, want)
		}
		if w != pb.Workload_WORKLOAD_VRAM && pl.VerifierFraction > 0.01 {
			t.Errorf("%v: verifier does %.3f of the prover's work", w, pl.VerifierFraction)
		}
		t.Logf("%v: %+v", w, pl)
	}
	// A 10x faster claim gets about 10x the work.
	fast := &pb.DeviceClaim{Model: "devnet CPU", Int8Tops: 0.1}
	a, _ := p.Plan(cpu, pb.Workload_WORKLOAD_GEMM_INT8)
	b, _ := p.Plan(fast, pb.Workload_WORKLOAD_GEMM_INT8)
	if r := float64(b.Shape.N) / float64(a.Shape.N); r < 9 || r > 11 {
		t.Fatalf("10x claim sized %d rows vs %d", b.Shape.N, a.Shape.N)
	}
	if _, err := p.Plan(&pb.DeviceClaim{Model: "x", Int8Tops: 1}, pb.Workload_WORKLOAD_GEMM_BF16); err == nil {
		t.Fatal("planned bf16 for a claim without a bf16 rate")
	}
}

func TestPlanUsesCatalog(t *testing.T) {
	p := testPlanner()
	// An H200 that underclaims to get longer deadlines is held to the
	// catalog; one that overclaims is held to its claim.
	under := &pb.DeviceClaim{Model: "NVIDIA H200", Int8Tops: 1, Bf16Tflops: 1}
	r := p.RatesFor(under)
	if !r.FromCatalog || r.BF16FLOPS != 989.5e12*DefaultEfficiency.BF16 || r.Int8OPS != 1979e12*DefaultEfficiency.Int8 {
		t.Fatalf("rates %+v", r)
	}
	over := &pb.DeviceClaim{Model: "H200 SXM", Bf16Tflops: 5000}
	if p.RatesFor(over).BF16FLOPS != 5000e12 {
		t.Fatal("a higher claim was lowered to the catalog")
	}
}

func TestValidatorChallenge(t *testing.T) {
	now := testClock.Start(5).Add(time.Second)
	challenger, target := newPeer(t), newPeer(t)
	v := NewValidator(DefaultLimits(), testClock, 100)
	ch, good, chCID := newChallenge(t, challenger, target, now)
	if _, _, err := v.Challenge(challenger, good, now); err != nil {
		t.Fatalf("good challenge rejected: %v", err)
	}
	if _, _, err := v.Challenge(challenger, good, now.Add(time.Second)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: got %v", err)
	}
	mutate := func(f func(c *pb.Challenge)) []byte {
		c := proto.Clone(ch).(*pb.Challenge)
		rand.Read(c.Nonce) // a fresh message, so only f's change matters
		f(c)
		b, _ := Marshal(c)
		return b
	}
	cases := []struct {
		name string
		from peer.ID
		data []byte
		want error
	}{
		{"garbage", challenger, []byte{0xff, 0x01, 0x02}, ErrMalformed},
		{"oversized", challenger, make([]byte, 5000), ErrOversized},
		{"wrong signer", target, mutate(func(*pb.Challenge) {}), ErrSigner},
		{"stale timestamp", challenger, mutate(func(c *pb.Challenge) { c.IssuedUnixMs -= int64(time.Hour / time.Millisecond) }), ErrStale},
		{"old epoch", challenger, mutate(func(c *pb.Challenge) { c.Epoch = 1 }), ErrStale},
		{"short nonce", challenger, mutate(func(c *pb.Challenge) { c.Nonce = c.Nonce[:5] }), ErrMalformed},
		{"zero rows", challenger, mutate(func(c *pb.Challenge) { c.N = 0 }), ErrMalformed},
		{"k overflow", challenger, mutate(func(c *pb.Challenge) { c.K = gpu.MaxK + 1 }), ErrMalformed},
		{"too many openings", challenger, mutate(func(c *pb.Challenge) { c.Openings = c.N + 1 }), ErrMalformed},
		{"self target", challenger, mutate(func(c *pb.Challenge) { c.Target = []byte(challenger) }), ErrMalformed},
		{"bad target", challenger, mutate(func(c *pb.Challenge) { c.Target = []byte("nope") }), ErrMalformed},
		{"unknown workload", challenger, mutate(func(c *pb.Challenge) { c.Workload = 9 }), ErrMalformed},
		{"no deadline", challenger, mutate(func(c *pb.Challenge) { c.DeadlineMs = 0 }), ErrMalformed},
		{"retry_of not a CID", challenger, mutate(func(c *pb.Challenge) { c.RetryOf = []byte("earlier") }), ErrMalformed},
	}
	retry := mutate(func(c *pb.Challenge) { c.RetryOf = chCID.Bytes() })
	if got, _, err := v.Challenge(challenger, retry, now); err != nil || !bytes.Equal(got.GetRetryOf(), chCID.Bytes()) {
		t.Fatalf("retry naming the first challenge: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := v.Challenge(tc.from, tc.data, now); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestValidatorNonCanonical(t *testing.T) {
	now := testClock.Start(5)
	challenger := newPeer(t)
	_, good, _ := newChallenge(t, challenger, newPeer(t), now)
	// Append an unknown field: decodes, but is not the canonical encoding.
	padded := append(append([]byte(nil), good...), 0xf8, 0x07, 0x01)
	v := NewValidator(DefaultLimits(), testClock, 100)
	if _, _, err := v.Challenge(challenger, padded, now); !errors.Is(err, ErrMalformed) {
		t.Fatalf("non-canonical encoding: got %v", err)
	}
}

func TestValidatorAttestation(t *testing.T) {
	now := testClock.Start(5)
	verifier, target := newPeer(t), newPeer(t)
	_, _, chCID := newChallenge(t, newPeer(t), target, now)
	att := &pb.Attestation{ChallengeCid: chCID.Bytes(), Target: []byte(target), Verifier: []byte(verifier), Epoch: 5,
		Verdict: pb.Verdict_VERDICT_PASS, LatencyMs: 10, DeadlineMs: 100, DataAccuracy: 1, IssuedUnixMs: now.UnixMilli()}
	v := NewValidator(DefaultLimits(), testClock, 100)
	b, _ := Marshal(att)
	if _, _, err := v.Attestation(verifier, b, now); err != nil {
		t.Fatal(err)
	}
	why := proto.Clone(att).(*pb.Attestation)
	why.Verdict, why.Reason, why.Evidence, why.LatencyMs = pb.Verdict_VERDICT_WRONG_ANSWER, "row 37 of C wrong: 1 of 66 opened — é", [][]byte{chCID.Bytes(), chCID.Bytes()}, 11
	b, _ = Marshal(why)
	if _, _, err := v.Attestation(verifier, b, now); err != nil {
		t.Fatalf("an attestation with a reason and evidence: %v", err)
	}
	for name, f := range map[string]func(a *pb.Attestation){
		"accuracy > 1":       func(a *pb.Attestation) { a.DataAccuracy = 1.5 },
		"no verdict":         func(a *pb.Attestation) { a.Verdict = 0 },
		"self attestation":   func(a *pb.Attestation) { a.Target = []byte(verifier) },
		"negative deviation": func(a *pb.Attestation) { a.ScoreDeviation = -1 },
		"bad cid":            func(a *pb.Attestation) { a.ChallengeCid = []byte{1, 2, 3} },
		"long reason":        func(a *pb.Attestation) { a.Reason = strings.Repeat("x", MaxReason+1) },
		"control in reason":  func(a *pb.Attestation) { a.Reason = "row 3 \x1b[2J wrong" },
		"bad evidence":       func(a *pb.Attestation) { a.Evidence = [][]byte{chCID.Bytes(), {9, 9}} },
		"too much evidence": func(a *pb.Attestation) {
			a.Evidence = [][]byte{chCID.Bytes(), chCID.Bytes(), chCID.Bytes(), chCID.Bytes(), chCID.Bytes()}
		},
	} {
		a := proto.Clone(att).(*pb.Attestation)
		a.LatencyMs++ // make it a distinct message
		f(a)
		b, _ := Marshal(a)
		if _, _, err := v.Attestation(verifier, b, now); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestReplayCacheBounded(t *testing.T) {
	r := NewReplayCache(10, time.Minute)
	now := time.Now()
	for i := range 100 {
		r.Add(string(rune(i)), now)
	}
	if r.Len() > 10 {
		t.Fatalf("cache holds %d > 10", r.Len())
	}
	r.Add("x", now)
	if r.Seen("x", now.Add(2*time.Minute)) {
		t.Fatal("entry outlived its ttl")
	}
	// Forget: unseen again, added again in place (no second queue entry
	// that would later evict the fresh one).
	r.Forget("x")
	if r.Seen("x", now) || !r.AddIfAbsent("x", now) || r.AddIfAbsent("x", now) {
		t.Fatal("a forgotten entry is not fresh exactly once")
	}
	for i := range 9 {
		r.Add(fmt.Sprint("y", i), now)
	}
	if !r.Seen("x", now) || r.Len() > 10 {
		t.Fatalf("after 9 more entries: x seen %v, %d held", r.Seen("x", now), r.Len())
	}
}

// fuzzValidator feeds arbitrary bytes to every decoder: none may panic, and
// whatever is accepted must re-encode to the same bytes.
func FuzzValidators(f *testing.F) {
	now := testClock.Start(5)
	challenger := fixedPeer(f, 5)
	ch, _, _ := newChallenge(f, challenger, fixedPeer(f, 6), now)
	ch.Nonce = bytes.Repeat([]byte{7}, 32)
	good, _ := Marshal(ch)
	f.Add(good)
	// A verifier's signed share commitment, and a commitment listing it.
	vkey, _, _ := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{9}, 64)))
	verifier, _ := peer.IDFromPrivateKey(vkey)
	_, chCID, _ := MessageCID(ch)
	sh := &pb.Share{ChallengeCid: chCID.Bytes(), Verifier: []byte(verifier), Hash: ShareHash(testSecret)}
	_ = SignShare(vkey, sh)
	shareCommit, _ := Marshal(&pb.Reveal{ChallengeCid: chCID.Bytes(), Share: sh})
	f.Add(shareCommit)
	listing, _ := Marshal(&pb.Commitment{ChallengeCid: chCID.Bytes(), Prover: []byte(challenger), MerkleRoot: make([]byte, 32), Leaves: 1, Shares: []*pb.Share{sh}})
	f.Add(listing)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		v := NewValidator(DefaultLimits(), testClock, 16)
		if m, _, err := v.Challenge(challenger, data, now); err == nil {
			if b, _ := Marshal(m); string(b) != string(data) {
				t.Fatal("accepted a non-canonical challenge")
			}
		}
		v.Claim(challenger, data, now)
		v.Commitment(challenger, data, now)
		v.Opening(challenger, data, now)
		v.Attestation(challenger, data, now)
		v.Reveal(challenger, data, now)
		v.ChallengeRequest(challenger, data, now)
	})
}

// FuzzVerify feeds arbitrary openings, for each workload, to the verifier:
// it must never panic and must never pass an opening that differs from the
// honest one.
func FuzzVerify(f *testing.F) {
	type honest struct {
		p       proved
		encoded []byte
	}
	// Fixed projection vectors keep every run of the target deterministic,
	// which coverage-guided fuzzing needs.
	freivaldsKey = func() [32]byte { return [32]byte{'f', 'u', 'z', 'z'} }
	var cases []honest
	for _, w := range []pb.Workload{pb.Workload_WORKLOAD_GEMM_INT8, pb.Workload_WORKLOAD_GEMM_BF16, pb.Workload_WORKLOAD_VRAM} {
		p := proveWorkload(f, w)
		b, _ := Marshal(p.op)
		cases = append(cases, honest{p, b})
		f.Add(uint8(len(cases)-1), b)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		h := cases[int(which)%len(cases)]
		op := &pb.Opening{}
		if proto.Unmarshal(data, op) != nil {
			return
		}
		res, err := Verify(context.Background(), gpu.NewCPU(gpu.WithWorkers(1)), h.p.ch, h.p.chCID, h.p.com, h.p.comCID, op, testSecret)
		if err != nil {
			return
		}
		if res.Verdict == pb.Verdict_VERDICT_PASS && !proto.Equal(op, h.p.op) {
			t.Fatal("a different opening passed")
		}
	})
}

// proveWorkload proves a small challenge of workload w honestly. Peers,
// nonce and epoch are fixed, so the fuzzer sees the same challenge in every
// worker process.
func proveWorkload(t testing.TB, w pb.Workload) proved {
	t.Helper()
	prover := fixedPeer(t, 3)
	ch, _, _ := newChallenge(t, fixedPeer(t, 4), prover, time.Now())
	ch.Nonce = bytes.Repeat([]byte{byte(w)}, 32)
	ch.Epoch, ch.IssuedUnixMs = 5, testClock.Start(5).UnixMilli()
	ch.Workload = w
	switch w {
	case pb.Workload_WORKLOAD_GEMM_BF16:
		ch.N, ch.K, ch.M = 40, 32, 8
	case pb.Workload_WORKLOAD_VRAM:
		ch.N, ch.K, ch.M = 0, 0, 0
		ch.VramLanes, ch.VramLaneBlocks, ch.VramRounds, ch.VramReads = 32, 4, 4, 8
	}
	_, chCID, _ := MessageCID(ch)
	com, op, err := Prove(context.Background(), gpu.NewCPU(), ch, chCID, prover, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	_, comCID, _ := MessageCID(com)
	return proved{ch, chCID, com, comCID, op}
}

func BenchmarkVerify(b *testing.B) {
	p := prove(b)
	cpu := gpu.NewCPU()
	for b.Loop() {
		if _, err := Verify(context.Background(), cpu, p.ch, p.chCID, p.com, p.comCID, p.op, testSecret); err != nil {
			b.Fatal(err)
		}
	}
}

func rootOf(t testing.TB, leaves [][32]byte) [32]byte {
	t.Helper()
	tr, err := merkle.New(leaves)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Root()
}

// testSecret is the challenger's opening secret in these tests; every test
// challenge carries its reveal hash.
var testSecret = []byte("poai test opening secret, 32 b..")

// oneShot opens a commitment at once with testSecret, as a prover does
// once the challenger has revealed it.
func oneShot(ch *pb.Challenge) func(*Committed, error) (*pb.Commitment, *pb.Opening, error) {
	return func(c *Committed, err error) (*pb.Commitment, *pb.Opening, error) {
		if err != nil {
			return nil, nil, err
		}
		if err := c.SetEpoch(ch.GetEpoch()); err != nil {
			return nil, nil, err
		}
		op, err := c.Open(context.Background(), ch, testSecret)
		return c.Commitment, op, err
	}
}

// TestReplayAcceptedOnce validates one claim from many goroutines at once
// (gossipsub validates in parallel): exactly one is accepted, the rest are
// replays.
func TestReplayAcceptedOnce(t *testing.T) {
	v := NewValidator(DefaultLimits(), testClock, 64)
	from := fixedPeer(t, 7)
	now := time.Now()
	data, err := Marshal(&pb.DeviceClaim{PeerId: []byte(from), Model: "x", Int8Tops: 1, HashGhps: 1, IssuedUnixMs: now.UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	var accepted, replayed atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := v.Claim(from, data, now)
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.Is(err, ErrReplayed):
				replayed.Add(1)
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 1 || replayed.Load() != 31 {
		t.Fatalf("accepted %d, replayed %d of 32 identical claims; want 1 and 31", accepted.Load(), replayed.Load())
	}
}

// TestAttestationLagFollowsDeadline: an attestation of a challenge whose
// deadline spans epochs is accepted that many epochs late, and no later.
func TestAttestationLagFollowsDeadline(t *testing.T) {
	verifier, target := newPeer(t), newPeer(t)
	_, _, chCID := newChallenge(t, newPeer(t), target, testClock.Start(5))
	v := NewValidator(DefaultLimits(), testClock, 100)
	for _, tc := range []struct {
		deadlineMs uint32
		at         uint64 // epoch the attestation arrives in
		ok         bool
	}{
		{100, 8, true},     // MaxEpochLag 2, + 1 for a deadline that may cross into the next epoch
		{100, 9, false},    // too late for a short deadline
		{35_000, 11, true}, // 35 s spans up to 4 epochs of 10 s, + 2
		{35_000, 12, false},
	} {
		now := testClock.Start(tc.at)
		att := &pb.Attestation{ChallengeCid: chCID.Bytes(), Target: []byte(target), Verifier: []byte(verifier), Epoch: 5,
			Verdict: pb.Verdict_VERDICT_NO_ANSWER, LatencyMs: tc.deadlineMs, DeadlineMs: tc.deadlineMs, IssuedUnixMs: now.UnixMilli()}
		b, _ := Marshal(att)
		_, _, err := v.Attestation(verifier, b, now)
		if (err == nil) != tc.ok {
			t.Fatalf("deadline %d ms, arriving in epoch %d: err %v, want ok=%v", tc.deadlineMs, tc.at, err, tc.ok)
		}
	}
}

// TestValidatorClaimAddrs: a claim may name up to MaxClaimAddrs multiaddrs;
// more, or bytes that are no multiaddr, reject it.
func TestValidatorClaimAddrs(t *testing.T) {
	v := NewValidator(DefaultLimits(), testClock, 64)
	from := newPeer(t)
	now := time.Now()
	tcp := multiaddr.StringCast("/ip4/10.1.2.3/tcp/4001").Bytes()
	for _, c := range []struct {
		name  string
		addrs [][]byte
		ok    bool
	}{
		{"none", nil, true},
		{"two", [][]byte{tcp, multiaddr.StringCast("/ip6/::1/udp/4001/quic-v1").Bytes()}, true},
		{"the most", slices.Repeat([][]byte{tcp}, MaxClaimAddrs), true},
		{"one too many", slices.Repeat([][]byte{tcp}, MaxClaimAddrs+1), false},
		{"garbage", [][]byte{tcp, {0xff, 0xff, 0x01}}, false},
		{"empty", [][]byte{{}}, false},
	} {
		now = now.Add(time.Millisecond) // a fresh message each time
		data, err := Marshal(&pb.DeviceClaim{PeerId: []byte(from), Model: "x", Int8Tops: 1, HashGhps: 1, IssuedUnixMs: now.UnixMilli(), Addrs: c.addrs})
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := v.Claim(from, data, now)
		if c.ok && (err != nil || len(m.GetAddrs()) != len(c.addrs)) {
			t.Errorf("%s: rejected: %v", c.name, err)
		}
		if !c.ok && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", c.name, err)
		}
	}
}

// TestAttestationReason: a verifier's error text (errors.Join puts
// newlines between errors; a prover's bytes may carry escapes or
// bidirectional overrides) becomes a reason the attestation validator
// accepts, so a cheater cannot keep its BAD_PROOF from being published.
func TestAttestationReason(t *testing.T) {
	now := testClock.Start(5)
	verifier, target := newPeer(t), newPeer(t)
	_, _, chCID := newChallenge(t, newPeer(t), target, now)
	v := NewValidator(DefaultLimits(), testClock, 100)
	joined := errors.Join(errors.New("leaf 3: bad Merkle proof"), errors.New("leaf 9: row of 12 bytes"))
	for i, raw := range []string{joined.Error(), "row \x1b[2J 3\u202e wrong", "bad \xff utf8", strings.Repeat("é", MaxReason)} {
		r := AttestationReason(raw)
		if len(r) > MaxReason || strings.ContainsAny(r, "\n\x1b\u202e") {
			t.Errorf("%q: reason %q", raw, r)
		}
		a := &pb.Attestation{ChallengeCid: chCID.Bytes(), Target: []byte(target), Verifier: []byte(verifier), Epoch: 5,
			Verdict: pb.Verdict_VERDICT_BAD_PROOF, LatencyMs: uint32(10 + i), DeadlineMs: 100, DataAccuracy: 0, IssuedUnixMs: now.UnixMilli(), Reason: r}
		b, _ := Marshal(a)
		if _, _, err := v.Attestation(verifier, b, now); err != nil {
			t.Errorf("%q: the validator refuses the verifier's own reason: %v", raw, err)
		}
	}
	if strings.Contains(joined.Error(), "\n") == false {
		t.Fatal("errors.Join no longer separates with a newline: this test tests nothing")
	}
}
