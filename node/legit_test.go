package node

import (
	"crypto/rand"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
)

func randomID(t *testing.T) peer.ID {
	_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestLegitimateChallenges: a node acts only on challenges from a scheduled
// challenger, one per target and epoch, with exactly the planned workload.
func TestLegitimateChallenges(t *testing.T) {
	n, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	n.id = randomID(t)
	n.claims.self, n.earned.self = n.id, n.id
	n.claims.own = &pb.DeviceClaim{PeerId: []byte(n.id), Model: "cpu", Int8Tops: 0.001, Bf16Tflops: 0.001, HashGhps: 0.001, VramBytes: 1 << 20}
	now := time.Now()
	target := randomID(t)
	claim := &pb.DeviceClaim{PeerId: []byte(target), Model: "cpu", Int8Tops: 0.002, Bf16Tflops: 0.001, HashGhps: 0.001, VramBytes: 1 << 20}
	n.claims.peers[target] = &peerEntry{claim: claim, seen: now}
	for range 6 {
		n.claims.peers[randomID(t)] = &peerEntry{claim: claim, seen: now}
	}
	epoch := n.clock.At(now)
	ranked := challenge.ChallengerRanking(epoch, target, n.earned.judges(n.claims.livePeers(now), epoch))
	scheduled, outsider := ranked[0], ranked[len(ranked)-1]

	plan, err := n.planner.Plan(claim, pb.Workload_WORKLOAD_GEMM_INT8)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(from peer.ID) *pb.Challenge {
		ch := &pb.Challenge{Version: 1, Epoch: epoch, Challenger: []byte(from), Target: []byte(target), Nonce: make([]byte, 32)}
		plan.Apply(ch)
		return ch
	}
	if err := n.tk.legitimate(mk(outsider), "a", outsider, now); err == nil {
		t.Fatal("challenge from an unscheduled peer accepted")
	}
	small := mk(scheduled)
	small.N, small.Openings = 8, 1
	if err := n.tk.legitimate(small, "b", scheduled, now); err == nil {
		t.Fatal("under-sized challenge accepted")
	}
	long := mk(scheduled)
	long.DeadlineMs *= 10
	if err := n.tk.legitimate(long, "c", scheduled, now); err == nil {
		t.Fatal("challenge with a longer deadline than planned accepted")
	}
	if err := n.tk.legitimate(mk(scheduled), "d", scheduled, now); err != nil {
		t.Fatalf("the planned challenge from the scheduled challenger refused: %v", err)
	}
	followed := &tracked{}
	n.tk.tracked["d"] = followed
	if err := n.tk.legitimate(mk(scheduled), "d2", scheduled, now); err == nil {
		t.Fatal("a second challenge of the target in the same epoch accepted")
	}
	if !followed.settled() {
		t.Fatal("the first of two challenges from one challenger in an epoch was not voided")
	}
	huge := mk(ranked[1])
	huge.Workload = pb.Workload_WORKLOAD_VRAM
	huge.VramLanes, huge.VramLaneBlocks, huge.VramRounds, huge.VramReads = 1<<20, 1<<20, 1, 1
	if err := n.tk.legitimate(huge, "e", ranked[1], now); err == nil {
		t.Fatal("a VRAM challenge for 32 TiB accepted for a 1 MiB claim")
	}
}

// TestWaveOffset: with one wave every target of an epoch is challenged at
// the same instant; with four, targets fall on at most four instants inside
// the middle 80 % of the epoch, and a target's wave changes with the epoch.
func TestWaveOffset(t *testing.T) {
	const epoch = 20 * time.Second
	ids := make([]peer.ID, 40)
	for i := range ids {
		ids[i] = randomID(t)
	}
	for _, id := range ids {
		if got := challenge.WaveOffset(7, id, 1, epoch); got != epoch/10 {
			t.Fatalf("one wave: offset %v, want %v", got, epoch/10)
		}
	}
	instants := map[time.Duration]int{}
	moved := false
	for _, id := range ids {
		o := challenge.WaveOffset(7, id, 4, epoch)
		if o < epoch/10 || o >= epoch*9/10 {
			t.Fatalf("offset %v outside the middle of the epoch", o)
		}
		if w := (o - epoch/10) * 4 / (epoch * 8 / 10); waveGrid(w, epoch) != o {
			t.Fatalf("offset %v is not on the grid of four waves", o)
		}
		instants[o]++
		moved = moved || challenge.WaveOffset(8, id, 4, epoch) != o
	}
	if len(instants) < 2 || len(instants) > 4 {
		t.Fatalf("40 targets on %d instants with 4 waves: %v", len(instants), instants)
	}
	if !moved {
		t.Fatal("no target changed wave between epochs")
	}
}

// TestClaimOffset: nodes re-announce their claims spread over the first
// tenth of the epoch, before the first challenge slot, each at an offset
// that is the same on every call and changes between epochs.
func TestClaimOffset(t *testing.T) {
	const epoch = 20 * time.Second
	var lo, hi time.Duration = epoch, 0
	moved := 0
	for range 200 {
		id := randomID(t)
		o := challenge.ClaimOffset(id, 5, epoch)
		if o < 0 || o >= epoch/challenge.ClaimSpread {
			t.Fatalf("offset %v outside [0, %v)", o, epoch/challenge.ClaimSpread)
		}
		if o >= challenge.SlotOffset(id, []peer.ID{id}, epoch) {
			t.Fatalf("claim at %v is not before the first challenge slot", o)
		}
		if challenge.ClaimOffset(id, 5, epoch) != o {
			t.Fatal("ClaimOffset is not deterministic")
		}
		if challenge.ClaimOffset(id, 6, epoch) != o {
			moved++
		}
		lo, hi = min(lo, o), max(hi, o)
	}
	// 200 uniform draws over 2 s: the extremes lie within 100 ms of the
	// ends unless the spread is broken (all at one instant, or a bias).
	if lo > 100*time.Millisecond || hi < epoch/challenge.ClaimSpread-100*time.Millisecond {
		t.Fatalf("offsets span only [%v, %v] of [0, %v)", lo, hi, epoch/challenge.ClaimSpread)
	}
	if moved < 190 {
		t.Fatalf("only %d of 200 offsets changed between epochs", moved)
	}
}

// TestChallengeDrawn: below rate 1 a target is challenged on a draw under
// the rate, and for sure once it has gone challenge.MaxChallengeGap epochs without
// one; over many epochs the gaps never exceed the bound and the rate stays
// the configured one.
func TestChallengeDrawn(t *testing.T) {
	if challenge.MaxChallengeGap(0.25) != 8 || challenge.MaxChallengeGap(1) != 1 || challenge.MaxChallengeGap(0.3) != 7 {
		t.Fatalf("gaps %d %d %d, want 8 1 7", challenge.MaxChallengeGap(0.25), challenge.MaxChallengeGap(1), challenge.MaxChallengeGap(0.3))
	}
	p := challenge.DrawProbability(0.25)
	if p < 0.2 || p > 0.22 {
		t.Fatalf("draw probability %.4f at rate 0.25, want about 0.212", p)
	}
	if !challenge.ChallengeDrawn(10, 9, 1, 0.99) || challenge.ChallengeDrawn(10, 9, 0.25, p+0.001) || !challenge.ChallengeDrawn(10, 9, 0.25, p-0.001) {
		t.Fatal("rate 1 always draws; below it a draw under the draw probability does")
	}
	if !challenge.ChallengeDrawn(18, 10, 0.25, 0.99) || challenge.ChallengeDrawn(17, 10, 0.25, 0.99) {
		t.Fatal("a target 8 epochs unchallenged at rate 0.25 is challenged whatever the draw, not at 7")
	}
	r := mrand.New(mrand.NewPCG(1, 2))
	last, drawn, worst := int64(0), 0, int64(0)
	const epochs = 100000
	for e := int64(1); e <= epochs; e++ {
		if challenge.ChallengeDrawn(e, last, 0.25, r.Float64()) {
			worst = max(worst, e-last)
			last = e
			drawn++
		}
	}
	if worst > 8 {
		t.Fatalf("a gap of %d epochs", worst)
	}
	// Targets first heard in the same epoch come due in different ones.
	due := map[int64]int{}
	for range 200 {
		id := randomID(t)
		last := challenge.InitialLastChallenged(id, 3, 0.25)
		if last > 3 || last < 3-7 || last != challenge.InitialLastChallenged(id, 3, 0.25) {
			t.Fatalf("first last-challenged %d for a claim heard in epoch 3", last)
		}
		due[last+8]++
	}
	if len(due) != 8 {
		t.Fatalf("200 targets heard in one epoch come due in %d epochs, want all 8: %v", len(due), due)
	}
	if rate := float64(drawn) / epochs; rate < 0.245 || rate > 0.255 {
		t.Fatalf("effective rate %.4f, want 0.25", rate)
	}
}

// waveGrid is the offset of wave w of four: 10 % of the epoch plus w times
// a fifth of it.
func waveGrid(w, epoch time.Duration) time.Duration {
	return epoch/10 + time.Duration(float64(epoch)*0.8*float64(w)/4)
}

// TestBusyOverlap: the part of a challenge's latency its target spent
// proving an earlier challenge of its own is discounted only when that
// earlier answer came in time and was verified correct, and by no more
// than its anticipated duration at the claimed rate; challenges of other
// targets (a device shared by two identities), later ones, unanswered
// ones, and a junk commitment posted just before the late answer (the
// late-junk move) excuse nothing.
func TestBusyOverlap(t *testing.T) {
	n, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	n.id = randomID(t)
	n.claims.self, n.earned.self = n.id, n.id
	a, b := randomID(t), randomID(t)
	claim := &pb.DeviceClaim{PeerId: []byte(a), Model: "cpu", Int8Tops: 0.002, Bf16Tflops: 0.001, HashGhps: 0.001, VramBytes: 1 << 20}
	n.claims.peers[a] = &peerEntry{claim: claim}
	plan, err := n.planner.Plan(claim, pb.Workload_WORKLOAD_GEMM_INT8)
	if err != nil {
		t.Fatal(err)
	}
	ch := &pb.Challenge{}
	plan.Apply(ch)
	deadline := deadlineOf(ch)
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	com := &pb.Commitment{}
	late := deadline + 2*plan.Anticipated // x's commitment, after its receipt at 0
	x := &tracked{target: a, ch: ch, receivedAt: at(0), com: com, comAt: at(late)}
	n.tk.tracked = map[string]*tracked{"x": x}
	if got := n.tk.busyOverlap(x); got != 0 {
		t.Fatalf("alone: overlap %v", got)
	}
	passed := func(u *tracked) *tracked { u.truth, u.truthKnown = pb.Verdict_VERDICT_PASS, true; return u }
	n.tk.tracked["other-target"] = passed(&tracked{target: b, ch: ch, receivedAt: at(-time.Second), com: com, comAt: at(late / 2)})
	n.tk.tracked["later"] = passed(&tracked{target: a, ch: ch, receivedAt: at(time.Millisecond), com: com, comAt: at(late / 2)})
	n.tk.tracked["unanswered"] = &tracked{target: a, ch: ch, receivedAt: at(-time.Millisecond)}
	// The late-junk move: a junk commitment to an earlier challenge, posted
	// just before the late answer, never verified.
	n.tk.tracked["junk"] = &tracked{target: a, ch: ch, receivedAt: at(-deadline), com: com, comAt: at(late - time.Millisecond)}
	if got := n.tk.busyOverlap(x); got != 0 {
		t.Fatalf("other target, later, unanswered or unverified junk: overlap %v", got)
	}
	// Verified wrong, or right but late: no excuse either.
	wrong := &tracked{target: a, ch: ch, receivedAt: at(-time.Millisecond), com: com, comAt: at(plan.Anticipated / 2)}
	wrong.truth, wrong.truthKnown = pb.Verdict_VERDICT_WRONG_ANSWER, true
	n.tk.tracked["wrong"] = wrong
	n.tk.tracked["passed-late"] = passed(&tracked{target: a, ch: ch, receivedAt: at(-2 * deadline), com: com, comAt: at(plan.Anticipated / 2)})
	if got := n.tk.busyOverlap(x); got != 0 {
		t.Fatalf("wrong or late earlier answers: overlap %v", got)
	}
	// A verified, timely earlier answer excuses the wait up to it...
	n.tk.tracked["earlier"] = passed(&tracked{target: a, ch: ch, receivedAt: at(-time.Millisecond), com: com, comAt: at(plan.Anticipated / 2)})
	if got := n.tk.busyOverlap(x); got != plan.Anticipated/2 {
		t.Fatalf("earlier challenge verified and answered at T/2: overlap %v, want %v", got, plan.Anticipated/2)
	}
	// ... and no more than its anticipated duration, however long it took.
	n.tk.tracked["long"] = passed(&tracked{target: a, ch: ch, receivedAt: at(-time.Millisecond), com: com, comAt: at(deadline - 2*time.Millisecond)})
	if got := n.tk.busyOverlap(x); got != plan.Anticipated {
		t.Fatalf("overlap %v beyond the earlier workload's anticipated %v", got, plan.Anticipated)
	}
	// Passes heard from verifiers in good standing count like this node's own.
	delete(n.tk.tracked, "long")
	delete(n.tk.tracked, "earlier")
	heard := &tracked{target: a, ch: ch, receivedAt: at(-time.Millisecond), com: com, comAt: at(plan.Anticipated / 4),
		atts: map[peer.ID]heardVerdict{randomID(t): {v: pb.Verdict_VERDICT_PASS}}}
	n.tk.tracked["heard"] = heard
	if got := n.tk.busyOverlap(x); got != plan.Anticipated/4 {
		t.Fatalf("earlier challenge passed by its verifiers: overlap %v, want %v", got, plan.Anticipated/4)
	}
}

func TestNeedsFollowUp(t *testing.T) {
	for _, c := range []struct {
		failed, passed int64
		want           bool
	}{
		{-1, -1, false}, // never failed
		{5, -1, true},   // a challenge failed
		{5, 5, false},   // ... but its retry passed
		{5, 6, false},   // ... or a later challenge passed
		{7, 3, true},    // an old pass does not clear a new failure
		{-1, 4, false},
	} {
		if got := challenge.NeedsFollowUp(c.failed, c.passed); got != c.want {
			t.Errorf("challenge.NeedsFollowUp(%d, %d) = %v, want %v", c.failed, c.passed, got, c.want)
		}
	}
	// 20 epochs at rate 0.25, verdicts heard within the epoch of their
	// challenge, as onEpoch and noteOutcome see them. verdict returns
	// +1 (pass), -1 (failure) or 0 (withheld: nobody published one).
	run := func(seed uint64, verdict func(e int64) int) (challenges, followUps int, firstFail int64) {
		r := mrand.New(mrand.NewPCG(seed, 7))
		last, failed, passed := int64(-int(seed%8)), int64(-1), int64(-1)
		firstFail = -1
		for e := int64(0); e < 20; e++ {
			f := challenge.NeedsFollowUp(failed, passed)
			if !f && !challenge.ChallengeDrawn(e, last, 0.25, r.Float64()) {
				continue
			}
			challenges++
			if f {
				followUps++
			}
			last = e
			switch verdict(e) {
			case -1:
				failed = e
				if firstFail < 0 {
					firstFail = e
				}
			case 1:
				passed = e
			}
		}
		return challenges, followUps, firstFail
	}
	fail := func(int64) int { return -1 }
	for seed := range uint64(50) {
		// A device late every time is tested every epoch after its first
		// failure, which comes within challenge.MaxChallengeGap epochs.
		if c, _, _ := run(seed, fail); c < 20-int(challenge.MaxChallengeGap(0.25)) {
			t.Fatalf("seed %d: a peer failing every challenge got %d challenges in 20 epochs, want at least %d", seed, c, 20-challenge.MaxChallengeGap(0.25))
		}
		// ... and so is one whose verdicts are withheld in every other
		// epoch (loaded verifiers): a follow-up nobody judged clears
		// nothing, so the chain of follow-ups goes on to the last epoch.
		// (A peer drawn only in even epochs is never judged: skip it.)
		if _, f, first := run(seed, func(e int64) int { return -int(e % 2) }); first >= 0 && f != 19-int(first) {
			t.Fatalf("seed %d: first failure in epoch %d, then %d follow-ups, want one in each of the %d epochs after it", seed, first, f, 19-first)
		}
		// An honest device that missed once (its first challenge from
		// epoch 3) gets one follow-up, which it passes.
		first := int64(-1)
		if _, f, _ := run(seed, func(e int64) int {
			if first < 0 && e >= 3 {
				first = e
			}
			if e == first {
				return -1
			}
			return 1
		}); first >= 0 && first < 19 && f != 1 {
			t.Fatalf("seed %d: %d follow-ups after one miss in epoch %d, want 1", seed, f, first)
		}
	}
}

// TestFollowUpKeepsFailedWorkload: a failure of one workload is cleared
// only by a pass of that workload, and it is the one a follow-up asks for.
func TestFollowUpKeepsFailedWorkload(t *testing.T) {
	n, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	target, verifier := randomID(t), randomID(t)
	p := &peerEntry{lastFailed: -1, lastPassed: -1}
	n.claims.peers[target] = p
	at := func(w pb.Workload, e uint64) *tracked {
		return &tracked{target: target, ch: &pb.Challenge{Workload: w, Epoch: e}}
	}
	n.tk.noteOutcome(at(pb.Workload_WORKLOAD_VRAM, 3), verifier, pb.Verdict_VERDICT_LATE)
	n.tk.noteOutcome(at(pb.Workload_WORKLOAD_GEMM_INT8, 4), verifier, pb.Verdict_VERDICT_PASS)
	if !challenge.NeedsFollowUp(p.lastFailed, p.lastPassed) || p.failedWorkload != pb.Workload_WORKLOAD_VRAM {
		t.Fatalf("a passing product cleared a memory failure: failed %d (%v), passed %d", p.lastFailed, p.failedWorkload, p.lastPassed)
	}
	n.tk.noteOutcome(at(pb.Workload_WORKLOAD_VRAM, 5), verifier, pb.Verdict_VERDICT_PASS)
	if challenge.NeedsFollowUp(p.lastFailed, p.lastPassed) {
		t.Fatalf("a passing VRAM proof did not clear the memory failure: failed %d, passed %d", p.lastFailed, p.lastPassed)
	}
}
