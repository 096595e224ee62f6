package challenge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

func vramChallenge(t testing.TB, p gpu.VRAMParams) *pb.Challenge {
	t.Helper()
	ch, _, _ := newChallenge(t, newPeer(t), newPeer(t), time.Now())
	ch.Workload = pb.Workload_WORKLOAD_VRAM
	ch.N, ch.K, ch.M = 0, 0, 0
	ch.VramLanes, ch.VramLaneBlocks, ch.VramRounds, ch.VramReads = uint32(p.Lanes), uint32(p.Blocks), uint32(p.Rounds), uint32(p.Reads)
	ch.Openings = uint32(min(66, p.Lanes))
	return ch
}

var smallVRAM = gpu.VRAMParams{Lanes: 128, Blocks: 64, Rounds: 16, Reads: 64}

func TestVRAMHonestAndWrongLanes(t *testing.T) {
	ch := vramChallenge(t, smallVRAM)
	_, chCID, _ := MessageCID(ch)
	prover := peer.ID(ch.Target)
	outputs, leaves, err := gpu.NewCPU().VRAM(context.Background(), Seed(ch), smallVRAM)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(outputs, leaves [][32]byte) Result {
		com, op, err := oneShot(ch)(Commit(chCID, prover, leaves, func(i int) []byte { return outputs[i][:] }))
		if err != nil {
			t.Fatal(err)
		}
		_, comCID, _ := MessageCID(com)
		res, err := Verify(context.Background(), gpu.NewCPU(), ch, chCID, com, comCID, op, testSecret)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := verify(outputs, leaves); res.Verdict != pb.Verdict_VERDICT_PASS || res.Accuracy != 1 {
		t.Fatalf("honest VRAM proof: %+v", res)
	}
	// A prover that skipped every lane from 64 on and committed to noise.
	for l := 64; l < smallVRAM.Lanes; l++ {
		outputs[l] = sha256.Sum256([]byte{byte(l)})
		leaves[l] = merkleLeaf(outputs[l][:])
	}
	res := verify(outputs, leaves)
	if res.Verdict != pb.Verdict_VERDICT_WRONG_ANSWER || res.Accuracy >= 1 || len(res.Wrong) == 0 || !strings.HasPrefix(res.Reason, "lane") {
		t.Fatalf("half-computed lanes: %+v", res)
	}
	for _, l := range res.Wrong {
		if l < 64 {
			t.Errorf("lane %d, computed honestly, reported wrong", l)
		}
	}
}

func merkleLeaf(b []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(b)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// TestGoldenVRAM pins seed → Merkle root of the lane outputs: every backend
// must reproduce it bit for bit.
func TestGoldenVRAM(t *testing.T) {
	var seed gpu.Seed
	copy(seed[:], "poai golden vector vram v1......")
	_, leaves, err := gpu.NewCPU().VRAM(context.Background(), seed, smallVRAM)
	if err != nil {
		t.Fatal(err)
	}
	root := rootOf(t, leaves)
	const want = "592efe8cf79cead0831b1218c8ad02b6ea06698b93c2da3b287ab2f643b55d8a"
	if got := hex.EncodeToString(root[:]); got != want {
		t.Fatalf("golden VRAM root %s", got)
	}
}

// halfMemoryProver (ADVERSARY model) holds only the even blocks and
// recomputes an odd one whenever a read needs it. It returns the lane
// outputs and the SHA-256 evaluations it spent.
func halfMemoryProver(seed gpu.Seed, p gpu.VRAMParams) ([][32]byte, float64) {
	total := uint64(p.Lanes * p.Blocks)
	kept := make(map[uint64][32]byte, total/2)
	hashes := 0.0
	for g := uint64(0); g < total; g += 2 {
		kept[g] = gpu.VRAMBlock(seed, g, p.Rounds)
		hashes += float64(p.Rounds)
	}
	outputs := make([][32]byte, p.Lanes)
	for l := range p.Lanes {
		outputs[l] = gpu.VRAMLane(seed, l, p, func(g uint64) [32]byte {
			hashes++
			if b, ok := kept[g]; ok {
				return b
			}
			hashes += float64(p.Rounds)
			return gpu.VRAMBlock(seed, g, p.Rounds)
		})
	}
	return outputs, hashes
}

// TestHalfMemoryProverMissesDeadline runs the half-memory adversary for
// real and counts its hashes: its answer is right, but it spends more than
// slack × the honest work, so on any device it misses a deadline of slack ×
// the honest time.
func TestHalfMemoryProverMissesDeadline(t *testing.T) {
	s := DefaultVRAMSizing()
	p := s.ParamsFor(128 << 10) // a 128 KiB "device"
	seed := Seed(vramChallenge(t, smallVRAM))
	honest, _, err := gpu.NewCPU().VRAM(context.Background(), seed, p)
	if err != nil {
		t.Fatal(err)
	}
	cheat, hashes := halfMemoryProver(seed, p)
	for l := range honest {
		if honest[l] != cheat[l] {
			t.Fatalf("lane %d: the half-memory prover's answer differs; it should be right, only slow", l)
		}
	}
	const slack = 2.5
	factor := hashes / p.Hashes()
	model := VRAMCheatFactor(0.5, p.Rounds, p.Reads*p.Lanes/(p.Lanes*p.Blocks))
	t.Logf("params %+v (%d KiB): half-memory prover does %.2fx the honest work (model %.2fx); deadline allows %.1fx",
		p, p.Bytes()>>10, factor, model, slack)
	if factor <= slack {
		t.Fatalf("half-memory prover within the deadline: %.2fx ≤ %.1fx", factor, slack)
	}
	if math.Abs(factor-model)/model > 0.1 {
		t.Fatalf("measured factor %.2f far from the model %.2f", factor, model)
	}
	if q := VRAMPassingFraction(slack, s.Rounds, s.ReadsPerBlock); q < 0.9 || q > 1 {
		t.Fatalf("a prover holding %.2f of the memory passes: margin too wide", q)
	}
}

func TestVRAMSizing(t *testing.T) {
	s := DefaultVRAMSizing()
	// Every size from a devnet's megabyte to 300 GB, those just past the
	// MaxLanes cap (8.6 GB of blocks) and the catalog's included: the fill
	// is Fill of the memory (the cap once left a 16 GB T4 filled 54 %).
	for _, mem := range []uint64{1 << 20, 9.3e9, 10e9, 16e9, 24e9, 25_757_220_864, 40e9, 48e9, 80 << 30, 85_520_809_984, 141e9, 150_754_820_096, 300e9} {
		p := s.ParamsFor(mem)
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		if fill := float64(p.Bytes()) / float64(mem); fill < s.Fill-0.001 || fill > s.Fill {
			t.Errorf("%d bytes: fills %.3f, want %.2f (%+v)", mem, fill, s.Fill, p)
		}
		if p.Lanes > MaxLanes {
			t.Errorf("%d bytes: %d lanes", mem, p.Lanes)
		}
		reads := float64(p.Lanes) * float64(p.Reads) / (float64(p.Lanes) * float64(p.Blocks))
		if math.Abs(reads-float64(s.ReadsPerBlock))/float64(s.ReadsPerBlock) > 0.1 {
			t.Errorf("%d bytes: %.1f reads per block", mem, reads)
		}
	}
}
