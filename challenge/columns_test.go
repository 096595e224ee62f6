package challenge

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// TestColumnSampledCheck: with m above CheckedColumns the opened rows are
// checked at columns drawn after the commitment (SampleColumns). A prover
// that leaves wrong the same 8 of 512 columns in every row (1/64 of the
// product: the cheapest way to skip work it cannot hide in the row
// sampling) passes a challenge with probability C(504, 64)/C(512, 64) ≈
// 0.35 (≈ (1 − 1/64)^64); over 300 challenges, each with its own secret,
// the pass count must lie in that binomial's 5-sigma band. The honest
// answer passes every time, and two verifications of one answer agree.
func TestColumnSampledCheck(t *testing.T) {
	prover := newPeer(t)
	cpu := gpu.NewCPU()
	bad := []int{3, 77, 150, 151, 300, 301, 302, 511}
	verify := func(i int, corrupt bool) pb.Verdict {
		secret := []byte(fmt.Sprintf("secret %d", i))
		ch, _, _ := newChallenge(t, newPeer(t), prover, time.Now())
		ch.M, ch.Openings, ch.RevealHash = 512, 8, RevealHash(secret)
		_, chCID, _ := MessageCID(ch)
		c, leaves, err := cpu.MatMulInt8(context.Background(), Seed(ch), ShapeOf(ch))
		if err != nil {
			t.Fatal(err)
		}
		if corrupt {
			for r := range int(ch.N) {
				for _, j := range bad {
					c.Row(r)[j] ^= 1
				}
				leaves[r] = gpu.LeafHash(c.Row(r))
			}
		}
		cm, err := CommitInt8(ch, chCID, prover, c, leaves)
		if err != nil {
			t.Fatal(err)
		}
		if err := cm.SetEpoch(ch.GetEpoch()); err != nil {
			t.Fatal(err)
		}
		op, err := cm.Open(context.Background(), ch, secret)
		if err != nil {
			t.Fatal(err)
		}
		_, comCID, _ := MessageCID(cm.Commitment)
		var verdict pb.Verdict
		for range 2 {
			res, err := Verify(context.Background(), cpu, ch, chCID, cm.Commitment, comCID, op, secret)
			if err != nil {
				t.Fatal(err)
			}
			if verdict != 0 && res.Verdict != verdict {
				t.Fatalf("two verifications of one answer disagree: %v, %v", verdict, res.Verdict)
			}
			verdict = res.Verdict
		}
		return verdict
	}
	for i := range 20 {
		if v := verify(i, false); v != pb.Verdict_VERDICT_PASS {
			t.Fatalf("honest answer: %v", v)
		}
	}
	const runs = 300
	passed := 0
	for i := range runs {
		switch v := verify(1000+i, true); v {
		case pb.Verdict_VERDICT_PASS:
			passed++
		case pb.Verdict_VERDICT_WRONG_ANSWER:
		default:
			t.Fatalf("verdict %v", v)
		}
	}
	// P(no bad column among 64 of 512) = Π_{i<64} (504 − i)/(512 − i).
	p := 1.0
	for i := range CheckedColumns(8, 512) {
		p *= float64(504-i) / float64(512-i)
	}
	mean, sd := runs*p, math.Sqrt(runs*p*(1-p))
	t.Logf("wrong in 8 of 512 columns: passed %d of %d, expected %.1f ± %.1f", passed, runs, mean, sd)
	if math.Abs(float64(passed)-mean) > 5*sd {
		t.Errorf("passed %d of %d, expected %.1f ± %.1f", passed, runs, mean, sd)
	}
	if bound := ElementCheckMiss(1.0/64, 8, CheckedColumns(8, 512)); bound < p {
		t.Errorf("ElementCheckMiss %.3f below the exact escape %.3f of column-aligned errors", bound, p)
	}
}

// TestElementCheckMiss pins the bound at the figures docs/soundness.md
// quotes: for the catalog's 66 openings and the 66 columns checked with
// them (CheckedColumns), an answer wrong in 5 % of its elements escapes a
// challenge with probability below 4 %, and in 10 % below 0.2 %.
func TestElementCheckMiss(t *testing.T) {
	for _, c := range []struct{ g, below float64 }{{0.05, 0.04}, {0.10, 0.002}, {0.25, 1e-7}} {
		got := ElementCheckMiss(c.g, 66, CheckedColumns(66, 8192))
		t.Logf("g %.2f: escape %.3g; whole rows alone %.3g", c.g, got, math.Pow(1-c.g, 66))
		if got >= c.below || got < math.Pow(1-c.g, 66) {
			t.Errorf("g %.2f: escape %.3g, want in [(1−g)^66, %g)", c.g, got, c.below)
		}
	}
}

// TestCheckDigestColumns: above CheckColumns columns a check digest hashes
// CheckColumns distinct elements of its leaf's row, at columns the secret
// chooses, the same for every verifier (computed in one pass), checked here
// against the full product; another secret chooses other columns.
func TestCheckDigestColumns(t *testing.T) {
	ctx := t.Context()
	cpu := gpu.NewCPU()
	ch, _, _ := newChallenge(t, newPeer(t), newPeer(t), time.Now())
	ch.M = 200
	_, chCID, _ := MessageCID(ch)
	full, _, err := cpu.MatMulInt8(ctx, Seed(ch), ShapeOf(ch))
	if err != nil {
		t.Fatal(err)
	}
	cols := CheckColumnsOf(ch, testSecret)
	if len(cols) != CheckColumns {
		t.Fatalf("%d columns, want %d", len(cols), CheckColumns)
	}
	seen := map[int]bool{}
	for _, j := range cols {
		if j < 0 || j >= int(ch.M) || seen[j] {
			t.Fatalf("columns %v: not distinct columns of [0, %d)", cols, ch.M)
		}
		seen[j] = true
	}
	if other := CheckColumnsOf(ch, []byte("another secret")); slices.Equal(other, cols) {
		t.Fatal("another secret drew the same columns")
	}
	var verifiers []peer.ID
	for range 12 {
		verifiers = append(verifiers, newPeer(t))
	}
	all, err := CheckDigests(ctx, cpu, ch, chCID, testSecret, verifiers)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range verifiers {
		leaf, _ := CheckLeaf(ch, testSecret, v)
		vals := make([]int32, len(cols))
		for i, j := range cols {
			vals[i] = full.Row(leaf)[j]
		}
		if !bytes.Equal(all[v], wantDigest(chCID, v, leaf, gpu.EncodeInt32Row(vals))) {
			t.Fatalf("digest of %s does not hash row %d at columns %v", v, leaf, cols)
		}
	}
}
