package node

import (
	"context"
	"crypto/rand"
	"runtime"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// liveHeap returns the bytes of live heap after two collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// memoryRows is the rows (lanes) of the challenges TestProverHeapFlat
// runs: a whole tree of them took 256 KiB, a VRAM answer 384 KiB.
const memoryRows = 1 << 12

// maxFollowedBytes bounds what a node keeps per challenge it follows once
// it has opened its answer: the challenge, commitment and opening
// messages and their bookkeeping, not the proof.
const maxFollowedBytes = 16 << 10

// proveAndOpen has n answer a challenge of workload w addressed to itself
// through its prover's commit and open steps (Node.answer, Node.open),
// with the challenger's secret already revealed, as after onReveal.
func proveAndOpen(t *testing.T, n *Node, w pb.Workload, challenger []byte, secret []byte) {
	t.Helper()
	nonce := make([]byte, 32)
	rand.Read(nonce)
	now := time.Now()
	ch := &pb.Challenge{
		Version: 1, Epoch: n.clock.At(now), Challenger: challenger, Target: []byte(n.id), Nonce: nonce, Workload: w,
		Openings: 66, DeadlineMs: 60_000, IssuedUnixMs: now.UnixMilli(), RevealHash: challenge.RevealHash(secret),
	}
	if w == pb.Workload_WORKLOAD_VRAM {
		ch.VramLanes, ch.VramLaneBlocks, ch.VramRounds, ch.VramReads = memoryRows, 1, 2, 4
	} else {
		ch.N, ch.K, ch.M = memoryRows, 8, 8
	}
	_, chCID, err := challenge.MessageCID(ch)
	if err != nil {
		t.Fatal(err)
	}
	n.onLoop(func() {
		n.tk.tracked[chCID.KeyString()] = &tracked{ch: ch, cid: chCID, target: n.id, challenger: peer.ID(challenger), receivedAt: now, secret: secret}
	})
	n.tk.answer(proveJob{ch: ch, cid: chCID, at: now})
	n.onLoop(func() {
		if tr := n.tk.tracked[chCID.KeyString()]; tr == nil || !tr.opened {
			t.Errorf("challenge %d not opened", len(n.tk.tracked))
		}
	})
}

// onLoop runs f on n's loop goroutine and waits for it.
func (n *Node) onLoop(f func()) {
	done := make(chan struct{})
	n.ev.post(func() { f(); close(done) })
	<-done
}

// TestProverHeapFlat runs 200 challenges of each workload in turn through
// a started node's honest prover (commit, then open with the revealed
// secret, on the CPU backend) and checks that its live heap stays flat:
// after 200 within 1.5x of after 50, and at most 16 KiB more per
// challenge followed. The node used to keep every proof's whole Merkle
// tree (and a VRAM proof's outputs) for the three epochs it follows the
// challenge.
func TestProverHeapFlat(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	challenger, secret := []byte(randomID(t)), []byte("memory test secret")
	workloads := []pb.Workload{pb.Workload_WORKLOAD_GEMM_INT8, pb.Workload_WORKLOAD_GEMM_BF16, pb.Workload_WORKLOAD_VRAM}
	heapAfter := func(from, to int) uint64 {
		for i := from; i < to; i++ {
			proveAndOpen(t, n, workloads[i%len(workloads)], challenger, secret)
		}
		time.Sleep(200 * time.Millisecond) // the openings' goroutines send
		return liveHeap()
	}
	h50 := heapAfter(0, 50)
	h200 := heapAfter(50, 200)
	per := (float64(h200) - float64(h50)) / 150
	t.Logf("live heap after 50 challenges %d bytes, after 200 %d (%.2fx, %.0f bytes per challenge)", h50, h200, float64(h200)/float64(h50), per)
	if float64(h200) > 1.5*float64(h50) {
		t.Errorf("heap after 200 challenges is %.2fx that after 50, above 1.5x", float64(h200)/float64(h50))
	}
	if per > maxFollowedBytes {
		t.Errorf("%.0f bytes kept per challenge, above %d", per, maxFollowedBytes)
	}
}

// TestOpeningRowsDropped checks that a followed challenge's opening keeps
// its rows only while a verification or re-check may need them: until
// this node knows the truth, and not past the held-openings budget for
// challenges it does not verify; expiring a challenge releases its share
// of the budget.
func TestOpeningRowsDropped(t *testing.T) {
	n, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	target, challenger := randomID(t), randomID(t)
	follow := func(epoch uint64, verifier bool) (*tracked, *pb.Opening) {
		ch := &pb.Challenge{Version: 1, Epoch: epoch, Challenger: []byte(challenger), Target: []byte(target), DeadlineMs: 1000}
		_, chCID, err := challenge.MessageCID(ch)
		if err != nil {
			t.Fatal(err)
		}
		tr := &tracked{ch: ch, cid: chCID, target: target, challenger: challenger, receivedAt: time.Now(), verifier: verifier}
		n.tk.tracked[chCID.KeyString()] = tr
		op := &pb.Opening{ChallengeCid: chCID.Bytes(), Prover: []byte(target), Epoch: epoch,
			Rows: []*pb.RowOpening{{Index: 3, Values: make([]byte, 4096), Proof: [][]byte{make([]byte, 32)}}}}
		n.tk.acceptOpening(tr, target, op, cid.Undef)
		return tr, op
	}
	a, op := follow(1, false)
	if a.op != op || a.slim || n.tk.heldOpenings != openingBytes(op) {
		t.Fatalf("opening not held: slim %v, %d bytes held", a.slim, n.tk.heldOpenings)
	}
	n.tk.learnTruth(a, pb.Verdict_VERDICT_PASS)
	if !a.slim || len(a.op.GetRows()) != 0 || a.op == nil || n.tk.heldOpenings != 0 {
		t.Fatalf("rows kept once the truth is known: slim %v, %d bytes held", a.slim, n.tk.heldOpenings)
	}
	n.tk.heldOpenings = maxHeldOpeningBytes
	b, _ := follow(2, false)
	if !b.slim {
		t.Fatal("a non-verifier held an opening past the budget")
	}
	c, op := follow(3, true)
	if c.slim || c.op != op {
		t.Fatal("a verifier dropped the opening it must verify")
	}
	n.tk.heldOpenings -= maxHeldOpeningBytes
	n.tk.expire(time.Now().Add(time.Hour))
	if len(n.tk.tracked) != 0 || n.tk.heldOpenings != 0 {
		t.Fatalf("after expiry: %d tracked, %d bytes held", len(n.tk.tracked), n.tk.heldOpenings)
	}
}

// TestAdversaryAnswersOpen checks that the answers the replay, lazy,
// equivocating and colluding provers commit to still open against the
// pruned trees a commitment keeps: each opening's proofs lead to its
// root (Verify returns a verdict, not an error), and a root ground
// against the sampling secret passes.
func TestAdversaryAnswersOpen(t *testing.T) {
	n, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	n.id, n.backend = randomID(t), gpu.NewCPU()
	ctx := t.Context()
	challenger, secret := randomID(t), []byte("adversary test secret")
	newCh := func(w pb.Workload) (*pb.Challenge, cid.Cid) {
		nonce := make([]byte, 32)
		rand.Read(nonce)
		ch := &pb.Challenge{Version: 1, Epoch: 5, Challenger: []byte(challenger), Target: []byte(n.id), Nonce: nonce, Workload: w,
			Openings: 12, DeadlineMs: 10_000, RevealHash: challenge.RevealHash(secret)}
		if w == pb.Workload_WORKLOAD_VRAM {
			ch.VramLanes, ch.VramLaneBlocks, ch.VramRounds, ch.VramReads = 101, 2, 2, 4
		} else {
			ch.N, ch.K, ch.M = 101, 16, 8
		}
		_, c, err := challenge.MessageCID(ch)
		if err != nil {
			t.Fatal(err)
		}
		return ch, c
	}
	check := func(name string, ch *pb.Challenge, chCID cid.Cid, c *challenge.Committed, err error) pb.Verdict {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.SetEpoch(ch.GetEpoch()); err != nil {
			t.Fatal(err)
		}
		op, err := c.Open(context.Background(), ch, secret)
		if err != nil {
			t.Fatalf("%s: open: %v", name, err)
		}
		res, err := challenge.Verify(ctx, gpu.NewCPU(), ch, chCID, c.Commitment, c.CommitmentCID, op, secret)
		if err != nil {
			t.Fatalf("%s: verify: %v", name, err)
		}
		return res.Verdict
	}
	lazy, replay := lazyCompute(n), replayCompute(n)
	for _, w := range []pb.Workload{pb.Workload_WORKLOAD_GEMM_INT8, pb.Workload_WORKLOAD_GEMM_BF16, pb.Workload_WORKLOAD_VRAM} {
		ch, chCID := newCh(w)
		c, err := lazy(ctx, ch, chCID)
		check("lazy "+w.String(), ch, chCID, c, err)
		for i := range 2 { // the second replays the first's answer
			ch, chCID := newCh(w)
			c, err := replay(ctx, ch, chCID)
			if v := check("replay "+w.String(), ch, chCID, c, err); i == 0 && v != pb.Verdict_VERDICT_PASS {
				t.Errorf("replay %v: its first answer is honest, got %v", w, v)
			}
		}
		if w == pb.Workload_WORKLOAD_VRAM {
			continue
		}
		// The equivocator's second root and the colluding target's, ground
		// against the secret.
		ch, chCID = newCh(w)
		e, err := partialProduct(ctx, n.cpu, ch, EquivocatorFraction)
		if err != nil {
			t.Fatal(err)
		}
		g := grindRoot(ch, chCID, n.id, challenge.SamplingSecret(secret, nil), e, maxCollusionGrind)
		if g == nil {
			t.Fatalf("%v: no root ground", w)
		}
		if v := check("ground "+w.String(), ch, chCID, g, nil); v != pb.Verdict_VERDICT_PASS {
			t.Errorf("ground root %v: %v, want a pass", w, v)
		}
	}
}
