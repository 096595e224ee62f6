package node

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/scoring"
)

// stallOnce is an ADVERSARY test backend, not a device model: the CPU
// backend, except that its first int8 proof hangs until its context ends,
// as a node whose machine stalled once would (a GC pause, a burst of load).
type stallOnce struct {
	*gpu.CPU
	stalled atomic.Bool
}

func (s *stallOnce) LeavesInt8(ctx context.Context, seed gpu.Seed, sh gpu.Shape) ([][32]byte, error) {
	if s.stalled.CompareAndSwap(false, true) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.CPU.LeavesInt8(ctx, seed, sh)
}

// TestMissRetried: a target whose first proof stalls past its deadline
// gets a retry from its challenger, after a back-off, naming the missed
// challenge (retry_of); the retry passes, and the challenger's book links
// the two, so the trust round forgives the miss (scoring's
// TestRetriedMissForgiven covers the arithmetic).
func TestMissRetried(t *testing.T) {
	if testing.Short() {
		t.Skip("times proofs against a fixed claim") // as TestChallengeWithoutGossipRoute
	}
	c := testConfig()
	c.Challenge.Workloads = []string{"int8"}
	// The NO_ANSWER verdict waits for the next epoch's claims; with
	// testConfig's 2 s epochs it comes too many epochs late to be fresh.
	c.Challenge.EpochLength = Duration(5 * time.Second)
	challenger := startNode(t, c, nil)
	c.Challenge.Rate = 1e-9 // the target challenges nobody
	target, err := New(t.TempDir(), withBootstrap(c, challenger), WithWarmup(200*time.Millisecond),
		WithBackend(&stallOnce{CPU: gpu.NewCPU(gpu.WithWorkers(1))}))
	if err != nil {
		t.Fatal(err)
	}
	if err := target.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close() })

	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := challenger.Book().Attestations(target.ID().String(), 100)
		if err != nil {
			t.Fatal(err)
		}
		verdicts := map[string]string{}
		for _, r := range recs {
			verdicts[r.Challenge] = r.Verdict
		}
		for _, r := range recs {
			if r.RetryOf == "" || r.Verdict != scoring.VerdictPass {
				continue
			}
			missed, ok := verdicts[r.RetryOf]
			if !ok {
				continue // the missed challenge's verdict is not in yet
			}
			if missed == scoring.VerdictPass {
				t.Fatalf("challenge %s was retried although it passed", r.RetryOf)
			}
			if got := testutil.ToFloat64(challenger.metrics.retries); got < 1 {
				t.Errorf("poai_challenges_retried_total = %v", got)
			}
			t.Logf("challenge %s: %s; its retry %s: pass", r.RetryOf, missed, r.Challenge)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	recs, _ := challenger.Book().Attestations(target.ID().String(), 100)
	t.Fatalf("no passing retry of a missed challenge: challenger issued %d, target answered %d, failed %d; records %+v",
		challenger.Stats().Issued, target.Stats().Answered, target.Stats().ProveFailed, recs)
}

func withBootstrap(c Config, n *Node) Config {
	c.P2P.Bootstrap = []string{n.Addrs()[0].String()}
	return c
}

// TestHeardFrom: a peer whose gossip reaches this node after a moment is
// heard from since then (its claims, or any RPC: a router graylisting it
// drops its claims, not its traffic), so its missed answers are
// NO_ANSWER, not UNREACHABLE; once it is gone and silent, it is not.
func TestHeardFrom(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	c := testConfig()
	a := startNode(t, c, nil)
	b, err := New(t.TempDir(), withBootstrap(c, a), WithWarmup(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(a.ConnectedPeers(), b.ID()); {
		if time.Now().After(deadline) {
			t.Fatal("b never connected to a")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// b's gossip (its claims, the messages it forwards) reaches a after
	// since: heard from.
	since := time.Now()
	heard := make(chan bool)
	ask := func(since time.Time) bool {
		a.ev.post(func() { heard <- a.tk.heardFrom(b.ID(), since) })
		return <-heard
	}
	for deadline := time.Now().Add(10 * time.Second); !ask(since); {
		if time.Now().After(deadline) {
			t.Fatal("a gossiping peer was not heard from")
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Close()
	for deadline := time.Now().Add(10 * time.Second); slices.Contains(a.ConnectedPeers(), b.ID()); {
		if time.Now().After(deadline) {
			t.Fatal("b still connected after closing")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ask(time.Now()) {
		t.Fatal("a closed, silent peer was heard from")
	}
}
