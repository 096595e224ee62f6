package challenge

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// TestColumnSampledCheck: with m above FreivaldsColumns a verifier checks
// its private sample of the columns. A prover that leaves wrong the same
// 8 of 512 columns in every row (1/64 of the product: the cheapest way to
// skip work it cannot hide in the row sampling) passes each verification
// with probability C(504, 64)/C(512, 64) ≈ 0.35 (≈ (1 − 1/64)^64); over
// 300 verifications with fresh private draws the pass count must lie in
// that binomial's 5-sigma band, and the honest answer must pass every
// time. ElementCheckMiss bounds the same escape from above.
func TestColumnSampledCheck(t *testing.T) {
	saved := freivaldsKey
	defer func() { freivaldsKey = saved }()
	draw := uint64(0)
	freivaldsKey = func() (k [32]byte) {
		draw++
		binary.BigEndian.PutUint64(k[:], draw)
		return k
	}

	prover := newPeer(t)
	ch, _, chCID := newChallenge(t, newPeer(t), prover, time.Now())
	ch.M = 512
	ch.Openings = 8
	_, chCID, _ = MessageCID(ch)
	cpu := gpu.NewCPU()
	c, leaves, err := cpu.MatMulInt8(context.Background(), Seed(ch), ShapeOf(ch))
	if err != nil {
		t.Fatal(err)
	}
	verify := func(c *gpu.Int32Matrix, leaves [][32]byte) pb.Verdict {
		com, op, err := oneShot(ch)(CommitInt8(ch, chCID, prover, c, leaves))
		if err != nil {
			t.Fatal(err)
		}
		_, comCID, _ := MessageCID(com)
		res, err := Verify(context.Background(), cpu, ch, chCID, com, comCID, op, testSecret)
		if err != nil {
			t.Fatal(err)
		}
		return res.Verdict
	}
	const runs = 300
	for range 20 {
		if v := verify(c, leaves); v != pb.Verdict_VERDICT_PASS {
			t.Fatalf("honest answer: %v", v)
		}
	}
	bad := []int{3, 77, 150, 151, 300, 301, 302, 511}
	for i := range int(ch.N) {
		for _, j := range bad {
			c.Row(i)[j] ^= 1
		}
		leaves[i] = gpu.LeafHash(c.Row(i))
	}
	passed := 0
	for range runs {
		switch v := verify(c, leaves); v {
		case pb.Verdict_VERDICT_PASS:
			passed++
		case pb.Verdict_VERDICT_WRONG_ANSWER:
		default:
			t.Fatalf("verdict %v", v)
		}
	}
	// P(no bad column among 64 of 512) = Π_{i<64} (504 − i)/(512 − i).
	p := 1.0
	for i := range FreivaldsColumns {
		p *= float64(504-i) / float64(512-i)
	}
	mean, sd := runs*p, math.Sqrt(runs*p*(1-p))
	t.Logf("wrong in 8 of 512 columns: passed %d of %d, expected %.1f ± %.1f; ElementCheckMiss(1/64, 8, 64) = %.3f", passed, runs, mean, sd, ElementCheckMiss(1.0/64, 8, FreivaldsColumns))
	if math.Abs(float64(passed)-mean) > 5*sd {
		t.Errorf("passed %d of %d, expected %.1f ± %.1f", passed, runs, mean, sd)
	}
	if bound := ElementCheckMiss(1.0/64, int(ch.Openings), FreivaldsColumns); bound < p {
		t.Errorf("ElementCheckMiss %.3f below the exact escape %.3f of column-aligned errors", bound, p)
	}
}

// TestElementCheckMiss pins the bound at the figures docs/soundness.md
// quotes: for the catalog's 66 openings and 64 columns, an answer wrong in
// 5 % of its elements escapes one verifier with probability below 4 %, and
// in 10 % below 0.2 %.
func TestElementCheckMiss(t *testing.T) {
	for _, c := range []struct{ g, below float64 }{{0.05, 0.04}, {0.10, 0.002}, {0.25, 1e-7}} {
		got := ElementCheckMiss(c.g, 66, FreivaldsColumns)
		t.Logf("g %.2f: escape %.3g; whole rows alone %.3g", c.g, got, math.Pow(1-c.g, 66))
		if got >= c.below || got < math.Pow(1-c.g, 66) {
			t.Errorf("g %.2f: escape %.3g, want in [(1−g)^66, %g)", c.g, got, c.below)
		}
	}
}

// TestCheckDigestColumns: above CheckColumns columns a check digest hashes
// CheckColumns consecutive elements of its leaf's row (wrapping at m) from
// an offset the secret and the verifier choose, checked here against the
// full product.
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
	offsets := map[int]bool{}
	for range 12 {
		v := newPeer(t)
		d, err := CheckDigests(ctx, cpu, ch, chCID, testSecret, []peer.ID{v})
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := CheckLeaf(ch, testSecret, v)
		cols := CheckColumnsOf(ch, testSecret, v)
		if len(cols) != CheckColumns {
			t.Fatalf("%d columns, want %d", len(cols), CheckColumns)
		}
		offsets[cols[0]] = true
		vals := make([]int32, len(cols))
		for i, j := range cols {
			if j != (cols[0]+i)%int(ch.M) {
				t.Fatalf("columns %v are not consecutive mod m", cols)
			}
			vals[i] = full.Row(leaf)[j]
		}
		if !bytes.Equal(d[v], wantDigest(chCID, v, leaf, gpu.EncodeInt32Row(vals))) {
			t.Fatalf("digest of %s does not hash row %d at columns %v", v, leaf, cols)
		}
	}
	if len(offsets) < 6 {
		t.Errorf("12 verifiers got %d distinct offsets", len(offsets))
	}
}
