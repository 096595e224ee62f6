package challenge

import (
	"context"
	"math"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// VRAMParamsOf returns the VRAM workload parameters of a challenge.
func VRAMParamsOf(ch *pb.Challenge) gpu.VRAMParams {
	return gpu.VRAMParams{Lanes: int(ch.GetVramLanes()), Blocks: int(ch.GetVramLaneBlocks()), Rounds: int(ch.GetVramRounds()), Reads: int(ch.GetVramReads())}
}

// MaxLanes bounds the lanes of a VRAM challenge (a uint32 on the wire).
const MaxLanes = 1 << 28

// VRAMSizing turns a claimed memory size into VRAM workload parameters.
type VRAMSizing struct {
	// Fill is the fraction of the claimed memory to occupy, in (0,1].
	Fill float64
	// Rounds is the hash rounds per block: what a missing block costs.
	Rounds int
	// ReadsPerBlock is c, the reads per block of memory over all lanes.
	ReadsPerBlock int
	// LaneReads is the read chain length of one lane: what a verifier
	// recomputes per opened lane is LaneReads·(Rounds+1) hashes.
	LaneReads int
}

// DefaultVRAMSizing returns Fill 0.93, Rounds 64, ReadsPerBlock 64 and
// LaneReads 64. Within a catalog claim's deadline (slack 1.5 plus an
// allowance of 0.5 s over 18 s or more, Planner.VRAMMustHold) a prover
// must hold 98.2–98.4 % of the blocks, so 91.3–91.5 % of the memory it is
// held to (at Fill 0.9 it was 88.5 %); within the slack of 2.5 of other
// claims, 95 % of the blocks. The fill leaves an honest H200 8.6 GiB of its 139.2 GiB
// free (NVML total 150.75 GB, its claim). A verifier pays about 4,200
// hashes per opened lane.
func DefaultVRAMSizing() VRAMSizing {
	return VRAMSizing{Fill: 0.93, Rounds: 64, ReadsPerBlock: 64, LaneReads: 64}
}

// ParamsFor returns parameters that occupy Fill of memBytes: total blocks
// T = Fill·memBytes/32, rounded to whole lanes of Blocks = T/Lanes, with
// Lanes = ReadsPerBlock·T/LaneReads so that the reads total c·T. Past
// MaxLanes (about 8.6 GB of blocks) lanes get longer instead of more
// numerous: Blocks = ⌈T/MaxLanes⌉, Lanes = ⌊T/Blocks⌋, and Reads =
// ⌈c·T/Lanes⌉, so the count never overflows, the reads still total about
// c·T, and the fill stays within Blocks·32 bytes of Fill·memBytes. (Fixing
// the lanes at MaxLanes and rounding the blocks down filled as little as
// 54 % of a 16 GB device.)
func (s VRAMSizing) ParamsFor(memBytes uint64) gpu.VRAMParams {
	total := max(int64(s.Fill*float64(memBytes))/gpu.VRAMBlockBytes, 1)
	lanes := max(int64(s.ReadsPerBlock)*total/int64(s.LaneReads), 1)
	reads := int64(s.LaneReads)
	blocks := max(total/lanes, 1)
	if lanes > MaxLanes {
		blocks = (total + MaxLanes - 1) / MaxLanes
		lanes = total / blocks
		reads = (int64(s.ReadsPerBlock)*total + lanes - 1) / lanes
	}
	return gpu.VRAMParams{Lanes: int(lanes), Blocks: int(blocks), Rounds: s.Rounds, Reads: int(reads)}
}

// VRAMCheatFactor returns the work of a prover that holds only a fraction q
// of the blocks, relative to an honest prover's, for Rounds R and c reads
// per block: it fills q·T blocks (q·R·T hashes) and, for each of the c·T
// reads, hashes once and recomputes a missing block (R hashes) with
// probability 1 − q:
//
//	(q·R + c·(1 + (1−q)·R)) / (R + c)
//
// A prover passes a deadline of slack σ times the honest time only while
// this stays at or below σ; DefaultVRAMSizing gives 16.75 at q = ½ and
// crosses 2.5 at q ≈ 0.95, 1.5 at q ≈ 0.984.
func VRAMCheatFactor(q float64, rounds, readsPerBlock int) float64 {
	r, c := float64(rounds), float64(readsPerBlock)
	return (q*r + c*(1+(1-q)*r)) / (r + c)
}

// VRAMPassingFraction returns the least fraction q of the memory a prover
// must hold for VRAMCheatFactor to stay within slack: solving the factor
// for q, 1 − q = (slack − 1)·(R + c) / (R·(c − 1)). It returns 0 when even
// holding nothing passes.
func VRAMPassingFraction(slack float64, rounds, readsPerBlock int) float64 {
	return vramPassingFraction(slack, float64(rounds), float64(readsPerBlock))
}

func vramPassingFraction(slack, r, c float64) float64 {
	q := (c*(1+r) - slack*(r+c)) / (c*r - r)
	return math.Max(0, math.Min(1, q))
}

// checkVRAM reruns each opened lane with blocks recomputed on demand and
// returns the lanes wrong or missing.
func checkVRAM(ctx context.Context, seed gpu.Seed, p gpu.VRAMParams, idx []int, values [][]byte) ([]int, float64, error) {
	var bad []int
	deviation := 0.0
	for n, v := range values {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		if v == nil {
			deviation = 1
			bad = append(bad, idx[n])
			continue
		}
		out := gpu.VRAMLane(seed, idx[n], p, func(g uint64) [32]byte { return gpu.VRAMBlock(seed, g, p.Rounds) })
		if string(out[:]) != string(v) {
			deviation = 1
			bad = append(bad, idx[n])
		}
	}
	return bad, deviation, nil
}
