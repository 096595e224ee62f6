package node

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/scoring"
)

// TestRestartedTargetAnswersUnheardChallenger: b restarts on its data
// directory and a challenges it at once, before b heard a's claim again.
// b must not ignore the challenge for want of a's claim (a is then not a
// live peer in b's view, so not a scheduled challenger): it fetches the
// claim from a directly, answers, and passes. No NO_ANSWER is attested
// against it and its score does not drop.
func TestRestartedTargetAnswersUnheardChallenger(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes and times a proof against a fixed claim")
	}
	c := testConfig()
	c.Challenge.EpochLength = Duration(5 * time.Second)
	c.Challenge.Rate = 1e-9 // no scheduled challenge: the test's is the only one
	a := startNode(t, c, nil)
	dir := t.TempDir()
	start := func() *Node {
		t.Helper()
		n, err := New(dir, withBootstrap(c, a), WithWarmup(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	b := start()
	id := b.ID()
	waitUntil(t, 10*time.Second, "claims exchanged", func() bool { return len(a.Peers()) == 2 && len(b.Peers()) == 2 })
	before := a.Book().Score(id.String())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = start()
	waitUntil(t, 10*time.Second, "b reconnected to a", func() bool { return slices.Contains(a.ConnectedPeers(), id) })
	var heard bool
	b.ev.snapshot(func() { _, heard = b.claims.peers[a.ID()] })
	out, err := a.ChallengeNow(id)
	if err != nil || out.CID == "" {
		t.Fatalf("a could not challenge the restarted b: %+v %v", out, err)
	}
	if heard {
		t.Log("b had heard a's claim before the challenge: the case under test did not arise this run")
	}
	defer func() {
		if got := testutil.ToFloat64(b.metrics.claimFetches.WithLabelValues("fetched")); !heard && got == 0 {
			t.Errorf("b never fetched a's claim (%v failed)", testutil.ToFloat64(b.metrics.claimFetches.WithLabelValues("failed")))
		}
	}()
	// The challenge itself must pass: a passing retry forgives a miss in
	// the score, but the miss is still attested.
	var recs []scoring.Recorded
	waitUntil(t, 25*time.Second, "a attests b's answer to the challenge", func() bool {
		recs, _ = a.Book().Attestations(id.String(), 10)
		return slices.ContainsFunc(recs, func(r scoring.Recorded) bool { return r.Challenge == out.CID })
	})
	t.Logf("a's records of b: %+v", recs)
	for _, r := range recs {
		if r.Verdict != scoring.VerdictPass {
			t.Errorf("restarted b attested %s (challenge %s); b answered %d", r.Verdict, r.Challenge, b.Stats().Answered)
		}
	}
	if after := a.Book().Score(id.String()); after < before {
		t.Errorf("restarted b's score fell from %v to %v", before, after)
	}
}

// TestRestartKeepsEarnedTrust: the passes a node recorded before a restart
// make their targets proven again after it, as they still are on the
// nodes that ran on; a peer with only a failure stays unproven.
func TestRestartKeepsEarnedTrust(t *testing.T) {
	dir := t.TempDir()
	n, err := New(dir, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	passed, failed := randomID(t), randomID(t)
	for i, a := range []scoring.Attestation{
		{Challenge: "a", Target: passed.String(), Verifier: n.ID().String(), Epoch: 5, Verdict: scoring.VerdictPass, Accuracy: 1, LatencyMS: 10, DeadlineMS: 100},
		{Challenge: "b", Target: failed.String(), Verifier: n.ID().String(), Epoch: 5, Verdict: scoring.VerdictWrongAnswer, LatencyMS: 10, DeadlineMS: 100},
	} {
		if err := n.Book().Record(a); err != nil {
			t.Fatal(i, err)
		}
	}
	n2 := restartNode(t, n, dir)
	var before, after, bad bool
	n2.ev.snapshot(func() {
		before, after, bad = n2.earned.proven(passed, 5+challenge.ProvenLag-1), n2.earned.proven(passed, 5+challenge.ProvenLag), n2.earned.proven(failed, 5+challenge.ProvenLag)
	})
	if before || !after || bad {
		t.Fatalf("after a restart: proven %v before challenge.ProvenLag, %v after it; the failed peer %v", before, after, bad)
	}
}

// TestStartTwiceThenClose: a second Start is ErrStarted and leaves the
// running node alone; Close then closes it once, a second Close and a
// Close of a node that never started do nothing, and a closed node does
// not start again.
func TestStartTwiceThenClose(t *testing.T) {
	n, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
	if len(n.Addrs()) == 0 {
		t.Fatal("the second Start took the running node's host down")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n.Start(t.Context()); !errors.Is(err, ErrStarted) {
		t.Fatalf("Start after Close: %v, want ErrStarted", err)
	}
	idle, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); err != nil {
		t.Fatalf("Close of a node never started: %v", err)
	}
}

// TestFailedStartThenClose: a node whose Start fails (its store is held
// by another node on the same data directory) closes without a panic and
// without touching the other node.
func TestFailedStartThenClose(t *testing.T) {
	dir := t.TempDir()
	a, err := New(dir, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(dir, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err == nil {
		b.Close()
		t.Fatal("two nodes started on one data directory")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close after a failed Start: %v", err)
	}
	if err := b.Start(t.Context()); !errors.Is(err, ErrStarted) {
		t.Fatalf("Start after a failed Start: %v, want ErrStarted", err)
	}
	if len(a.Addrs()) == 0 {
		t.Fatal("the failed node closed the running one's host")
	}
}
