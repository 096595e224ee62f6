package node

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/p2p"
)

// TestChallengeWithoutGossipRoute: b and c reach each other only through a
// relay that forwards claims and nothing else, so no challenge or reveal
// can travel between them by gossip. b, c's only possible challenger,
// learns c's addresses from its claim and hands it each challenge and
// reveal directly (p2p.DirectProtocol); c answers and passes.
func TestChallengeWithoutGossipRoute(t *testing.T) {
	if testing.Short() {
		// .ci/run's race step: under the race detector the CPU prover runs
		// several times slower than testConfig's fixed claim, so every
		// answer is late; go test ./... runs it in full.
		t.Skip("times proofs against a fixed claim")
	}
	relay, _ := bareHost(t)
	accept := func(context.Context, peer.ID, []byte) (any, error) { return nil, nil }
	if err := relay.Join(p2p.TopicClaims, accept, func(p2p.Message) {}); err != nil {
		t.Fatal(err)
	}
	c := testConfig()
	c.P2P.Bootstrap = []string{relay.Addrs()[0].String()}
	b := startNode(t, c, nil)
	c.Challenge.Rate = 1e-9 // the target challenges nobody: b's first challenge is the first message between them
	target := startNode(t, c, nil)

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		s, err := b.Book().Summarize(target.ID().String())
		if err == nil && s.Passed > 0 {
			t.Logf("after %d challenges: %+v", b.Stats().Issued, s)
			if got := testutil.ToFloat64(b.metrics.direct.WithLabelValues(p2p.TopicChallenges, "sent")); got == 0 {
				t.Errorf("no challenge counted as sent directly (%v failed)", testutil.ToFloat64(b.metrics.direct.WithLabelValues(p2p.TopicChallenges, "failed")))
			}
			// The answer goes back the same way: the commitment and the
			// opening reach b directly too (or come second to the gossip
			// copy, once the direct dial gave them a gossip route).
			for _, topic := range []string{p2p.TopicCommitments, p2p.TopicOpenings} {
				got := testutil.ToFloat64(target.metrics.direct.WithLabelValues(topic, "sent")) +
					testutil.ToFloat64(target.metrics.direct.WithLabelValues(topic, "rejected"))
				if got == 0 {
					t.Errorf("the target handed b no %s directly (%v failed)", topic, testutil.ToFloat64(target.metrics.direct.WithLabelValues(topic, "failed")))
				}
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	s, _ := b.Book().Summarize(target.ID().String())
	t.Fatalf("the target never passed a challenge: b issued %d, target answered %d; b's summary %+v", b.Stats().Issued, target.Stats().Answered, s)
}

// TestJudgeCheckDigest: a verifier whose attestation carries the check
// digest this node recomputed agrees; one that attests the same, right
// verdict without it (it did not recompute) is contradicted.
func TestJudgeCheckDigest(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	honest, lazy, target, challenger := randomID(t), randomID(t), randomID(t), randomID(t)
	ch := &pb.Challenge{Version: 1, Epoch: 1, Challenger: []byte(challenger), Target: []byte(target), Nonce: []byte("nonce"),
		Workload: pb.Workload_WORKLOAD_GEMM_INT8, N: 64, K: 32, M: 32, Openings: 4, DeadlineMs: 1000}
	_, chCID, err := challenge.MessageCID(ch)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("the challenger's secret")
	digests, err := challenge.CheckDigests(t.Context(), gpu.NewCPU(), ch, chCID, secret, []peer.ID{honest, lazy})
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracked{ch: ch, cid: chCID, target: target, challenger: challenger, truth: pb.Verdict_VERDICT_PASS, truthKnown: true, digests: digests}
	n.ev.snapshot(func() {
		n.tk.judge(tr, honest, heardVerdict{v: pb.Verdict_VERDICT_PASS, digest: digests[honest]})
		n.tk.judge(tr, lazy, heardVerdict{v: pb.Verdict_VERDICT_PASS})
		n.tk.judge(tr, lazy, heardVerdict{v: pb.Verdict_VERDICT_PASS, digest: digests[honest]}) // someone else's
	})
	if got := testutil.ToFloat64(n.metrics.checks.WithLabelValues("agree")); got != 1 {
		t.Errorf("agreements %v, want 1 (the verifier with the right digest)", got)
	}
	if got := testutil.ToFloat64(n.metrics.checks.WithLabelValues("contradict")); got != 2 {
		t.Errorf("contradictions %v, want 2 (no digest, another verifier's digest)", got)
	}
}

// TestAuditCheckDigest: a node that neither verified nor re-checked a
// challenge audits its verifiers' check digests once the secret is out:
// a correctness verdict without the right digest (none, or made up) is
// contradicted, the right one and a timing verdict are not, and nothing
// is counted as agreement (a right digest says nothing of the verdict).
func TestAuditCheckDigest(t *testing.T) {
	cfg := testConfig()
	cfg.Scoring.RecheckFraction = 0
	n := startNode(t, cfg, nil)
	honest, lazy, quiet, forger, target, challenger := randomID(t), randomID(t), randomID(t), randomID(t), randomID(t), randomID(t)
	ch := &pb.Challenge{Version: 1, Epoch: 1, Challenger: []byte(challenger), Target: []byte(target), Nonce: []byte("nonce"),
		Workload: pb.Workload_WORKLOAD_GEMM_INT8, N: 64, K: 32, M: 32, Openings: 4, DeadlineMs: 1000}
	_, chCID, err := challenge.MessageCID(ch)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("the challenger's secret")
	digests, err := challenge.CheckDigests(t.Context(), gpu.NewCPU(), ch, chCID, secret, []peer.ID{honest})
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracked{ch: ch, cid: chCID, target: target, challenger: challenger, verifiers: []peer.ID{honest, lazy, quiet, forger}}
	n.ev.snapshot(func() {
		n.tk.noteAttestation(tr, honest, heardVerdict{v: pb.Verdict_VERDICT_PASS, digest: digests[honest]})
		n.tk.noteAttestation(tr, lazy, heardVerdict{v: pb.Verdict_VERDICT_PASS})
		n.tk.noteAttestation(tr, quiet, heardVerdict{v: pb.Verdict_VERDICT_NO_ANSWER})
		tr.secret = secret // the reveal
		n.tk.tryAudit(tr)
	})
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(n.metrics.audits) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no audit completed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// After the audit, a made-up digest is judged on arrival.
	n.ev.snapshot(func() {
		n.tk.noteAttestation(tr, forger, heardVerdict{v: pb.Verdict_VERDICT_WRONG_ANSWER, digest: bytes.Repeat([]byte{7}, challenge.CheckDigestSize)})
	})
	if got := testutil.ToFloat64(n.metrics.checks.WithLabelValues("contradict")); got != 2 {
		t.Errorf("contradictions %v, want 2 (no digest, a made-up digest)", got)
	}
	if got := testutil.ToFloat64(n.metrics.checks.WithLabelValues("agree")); got != 0 {
		t.Errorf("agreements %v, want 0", got)
	}
	if got := testutil.ToFloat64(n.metrics.audits); got != 1 {
		t.Errorf("audits %v, want 1", got)
	}
}
