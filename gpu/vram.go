package gpu

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// VRAMParams shape the VRAM-capacity workload.
//
// Memory is Lanes·Blocks blocks of VRAMBlockBytes. Every block is
// expensive to make: block g = H^Rounds(tag || seed || g), Rounds iterated
// SHA-256 compressions, independent of every other block, so the fill is
// parallel. Then each lane runs a sequential chain of Reads steps, ROMix
// style (Percival, "Stronger Key Derivation via Sequential Memory-Hard
// Functions", BSDCan 2009): x ← H(x || block[x mod (Lanes·Blocks)]); the
// next index depends on the block just read, so reads cannot be scheduled
// ahead, and they range over the whole memory, so no lane can be proved
// with less than all of it. The lane's output is its final x.
//
// A prover that keeps a fraction q of the blocks pays Rounds hashes for
// each read of a missing one: with Reads·Lanes = c·Lanes·Blocks reads,
// its work is Blocks·Lanes·(q·Rounds + c·(1 + (1−q)·Rounds)) hashes
// against the honest Blocks·Lanes·(Rounds + c) — see
// challenge.VRAMCheatFactor.
type VRAMParams struct {
	Lanes, Blocks, Rounds, Reads int
}

// VRAMBlockBytes is the size of one block (a SHA-256 digest).
const VRAMBlockBytes = 32

// Bytes returns the memory an honest prover holds.
func (p VRAMParams) Bytes() uint64 { return uint64(p.Lanes) * uint64(p.Blocks) * VRAMBlockBytes }

// Hashes returns the SHA-256 evaluations of an honest prover: the fill
// (Lanes·Blocks·Rounds) plus one per read.
func (p VRAMParams) Hashes() float64 {
	return float64(p.Lanes)*float64(p.Blocks)*float64(p.Rounds) + float64(p.Lanes)*float64(p.Reads)
}

// Validate reports parameters no backend accepts.
func (p VRAMParams) Validate() error {
	if p.Lanes <= 0 || p.Blocks <= 0 || p.Rounds <= 0 || p.Reads <= 0 {
		return fmt.Errorf("%w: VRAM parameters %+v must be positive", ErrShape, p)
	}
	if uint64(p.Lanes)*uint64(p.Blocks) > 1<<40 {
		return fmt.Errorf("%w: %d blocks is too many", ErrShape, uint64(p.Lanes)*uint64(p.Blocks))
	}
	return nil
}

const vramTag = "poai/1/vram"

// VRAMBlock computes block g of the workload for seed: Rounds iterations of
// x ← SHA-256(x || g), starting from SHA-256(tag || seed || g), with g as 8
// bytes little-endian.
func VRAMBlock(seed Seed, g uint64, rounds int) [32]byte {
	var buf [len(vramTag) + 32 + 8]byte
	copy(buf[:], vramTag)
	copy(buf[len(vramTag):], seed[:])
	binary.LittleEndian.PutUint64(buf[len(vramTag)+32:], g)
	x := sha256.Sum256(buf[:])
	var step [40]byte
	binary.LittleEndian.PutUint64(step[32:], g)
	for r := 1; r < rounds; r++ {
		copy(step[:32], x[:])
		x = sha256.Sum256(step[:])
	}
	return x
}

// VRAMLane runs lane's read chain, fetching blocks through block (from
// memory, or recomputed on demand as a verifier does), and returns the
// lane's output: start x = SHA-256(tag || seed || "lane" || lane), then
// Reads times x ← SHA-256(x || block(LE64(x[0:8]) mod total)).
func VRAMLane(seed Seed, lane int, p VRAMParams, block func(g uint64) [32]byte) [32]byte {
	total := uint64(p.Lanes) * uint64(p.Blocks)
	var buf [len(vramTag) + 32 + 4 + 8]byte
	copy(buf[:], vramTag)
	copy(buf[len(vramTag):], seed[:])
	copy(buf[len(vramTag)+32:], "lane")
	binary.LittleEndian.PutUint64(buf[len(vramTag)+36:], uint64(lane))
	x := sha256.Sum256(buf[:])
	var step [64]byte
	for range p.Reads {
		b := block(binary.LittleEndian.Uint64(x[:8]) % total)
		copy(step[:32], x[:])
		copy(step[32:], b[:])
		x = sha256.Sum256(step[:])
	}
	return x
}

// VRAM runs the whole workload on the CPU: fill every block into memory
// (Lanes·Blocks·32 bytes), then every lane's read chain. It returns the lane
// outputs and their Merkle leaves, SHA-256(0x00 || output).
func (c *CPU) VRAM(ctx context.Context, seed Seed, p VRAMParams) (outputs, leaves [][32]byte, err error) {
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	if need := p.Bytes() + 64*uint64(p.Lanes); need > c.maxMemory {
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMemory, need, c.maxMemory)
	}
	total := p.Lanes * p.Blocks
	mem := make([][32]byte, total)
	if err := c.parallel(ctx, total, 4096, func(lo, hi int) {
		for g := lo; g < hi; g++ {
			mem[g] = VRAMBlock(seed, uint64(g), p.Rounds)
		}
	}); err != nil {
		return nil, nil, err
	}
	outputs = make([][32]byte, p.Lanes)
	leaves = make([][32]byte, p.Lanes)
	err = c.parallel(ctx, p.Lanes, 1, func(lo, hi int) {
		for l := lo; l < hi; l++ {
			outputs[l] = VRAMLane(seed, l, p, func(g uint64) [32]byte { return mem[g] })
			leaves[l] = leafHashBytes(outputs[l][:])
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return outputs, leaves, nil
}
