package challenge

import (
	"context"
	"runtime"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

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

// retainedPerChallenge runs held challenges like ch (each with its own
// nonce) on the CPU backend, keeps what Run returns — a prover's state
// between its commitment and its opening — and returns the live heap
// they add, per challenge.
func retainedPerChallenge(t testing.TB, ch *pb.Challenge, held int) float64 {
	t.Helper()
	backend := gpu.NewCPU()
	prover := newPeer(t)
	keep := make([]*Committed, 0, held)
	before := liveHeap()
	for i := range held {
		c := proto.Clone(ch).(*pb.Challenge)
		c.Nonce = append([]byte{byte(i)}, c.Nonce[1:]...)
		_, chCID, err := MessageCID(c)
		if err != nil {
			t.Fatal(err)
		}
		committed, err := Run(context.Background(), backend, c, chCID, prover)
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, committed)
	}
	after := liveHeap()
	runtime.KeepAlive(keep)
	return float64(int64(after)-int64(before)) / float64(held)
}

// memoryChallenges are devnet-sized challenges of each workload: the
// retained bytes depend on the rows (lanes), not on K and M, which are
// kept small so the test runs fast.
func memoryChallenges(t testing.TB) map[string]*pb.Challenge {
	t.Helper()
	const rows = 1 << 14
	base, _, _ := newChallenge(t, newPeer(t), newPeer(t), time.Now())
	base.Openings = 66
	int8Ch := proto.Clone(base).(*pb.Challenge)
	int8Ch.N, int8Ch.K, int8Ch.M = rows, 32, 32
	bf16Ch := proto.Clone(int8Ch).(*pb.Challenge)
	bf16Ch.Workload = pb.Workload_WORKLOAD_GEMM_BF16
	vramCh := proto.Clone(base).(*pb.Challenge)
	vramCh.Workload = pb.Workload_WORKLOAD_VRAM
	vramCh.N, vramCh.K, vramCh.M = 0, 0, 0
	vramCh.VramLanes, vramCh.VramLaneBlocks, vramCh.VramRounds, vramCh.VramReads = rows, 1, 2, 4
	return map[string]*pb.Challenge{"int8": int8Ch, "bf16": bf16Ch, "vram": vramCh}
}

// Retained-bytes bounds per committed challenge of n rows or lanes: a
// GEMM prover keeps its Merkle tree from height 1 up (about one hash per
// row) and recomputes the opened rows and their siblings; a VRAM prover
// keeps its lane outputs (32 bytes per lane, which cannot be recomputed
// short of the whole workload) and its tree from height 4 up.
const (
	retainedFixed   = 64 << 10
	retainedGEMMRow = 32
	retainedVRAMRow = 40
)

// TestRetainedBytesPerChallenge holds 8 committed challenges of each
// workload and checks the live heap each adds: at most 64 KiB plus 32
// bytes per row (GEMM) or 40 per lane (VRAM). Holding the whole tree
// took 64 bytes per row, and the VRAM outputs 96 per lane.
func TestRetainedBytesPerChallenge(t *testing.T) {
	for name, ch := range memoryChallenges(t) {
		rows, perRow := int(ch.GetN()), retainedGEMMRow
		if ch.GetWorkload() == pb.Workload_WORKLOAD_VRAM {
			rows, perRow = int(ch.GetVramLanes()), retainedVRAMRow
		}
		got := retainedPerChallenge(t, ch, 8)
		bound := float64(retainedFixed + perRow*rows)
		t.Logf("%s: %d rows, %.0f bytes retained per challenge (%.1f per row), bound %.0f", name, rows, got, got/float64(rows), bound)
		if got > bound {
			t.Errorf("%s: %.0f bytes retained per challenge, above %.0f", name, got, bound)
		}
	}
}

// BenchmarkRetained reports the bytes a committed challenge of each
// workload holds until its opening (retained-B/op, 16,384 rows or lanes).
func BenchmarkRetained(b *testing.B) {
	for name, ch := range memoryChallenges(b) {
		b.Run(name, func(b *testing.B) {
			var got float64
			for range b.N {
				got = retainedPerChallenge(b, ch, 4)
			}
			b.ReportMetric(got, "retained-B/op")
		})
	}
}

// BenchmarkOpen times the opening of a committed devnet-sized int8
// challenge (8,192×512×512, 66 openings) on the CPU backend: the opened
// rows, and their siblings under a tree kept from height 1, recomputed.
func BenchmarkOpen(b *testing.B) {
	ch, _, _ := newChallenge(b, newPeer(b), newPeer(b), time.Now())
	ch.N, ch.K, ch.M, ch.Openings = 8192, 512, 512, 66
	_, chCID, err := MessageCID(ch)
	if err != nil {
		b.Fatal(err)
	}
	c, err := Run(context.Background(), gpu.NewCPU(), ch, chCID, newPeer(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := c.Open(context.Background(), ch, testSecret); err != nil {
			b.Fatal(err)
		}
	}
}
