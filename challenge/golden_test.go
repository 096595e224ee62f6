package challenge

import (
	"context"
	"encoding/hex"
	"testing"

	"github.com/poai-network/poai/gpu"
)

// Golden vectors: seed in, Merkle root out. Any backend must reproduce the
// int8 and VRAM roots bit for bit. The bf16 root is the CPU backend's (fp32
// accumulation in index order); other backends match its inputs bit for bit
// (gpu.TestGoldenBF16) and its values within BF16Tolerance, not its root.
func TestGoldenRoots(t *testing.T) {
	var seed gpu.Seed
	copy(seed[:], "poai golden vector root v1......")
	cpu := gpu.NewCPU()
	ctx := context.Background()
	_, int8Leaves, err := cpu.MatMulInt8(ctx, seed, gpu.Shape{N: 256, K: 512, M: 64})
	if err != nil {
		t.Fatal(err)
	}
	_, bf16Leaves, err := cpu.MatMulBF16(ctx, seed, gpu.Shape{N: 256, K: 128, M: 64})
	if err != nil {
		t.Fatal(err)
	}
	_, vramLeaves, err := cpu.VRAM(ctx, seed, gpu.VRAMParams{Lanes: 256, Blocks: 16, Rounds: 64, Reads: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		name   string
		leaves [][32]byte
		want   string
	}{
		{"int8 256x512x64", int8Leaves, "209b75391a5730f6992f7f03db79435d85b00e4bea78975274641392c1ec9374"},
		{"bf16 256x128x64 (CPU reference)", bf16Leaves, "5a66bbcf6fd8af80cc8aaadd393a371d7a8369deed16e2cd60b51b347f13d456"},
		{"VRAM 256 lanes x 16 blocks, 64 rounds, 64 reads", vramLeaves, "0f80025b24245f477e7791749f5d07d9a2ce64feb350c6aafd7d0fc5502577b2"},
	} {
		root := rootOf(t, g.leaves)
		if got := hex.EncodeToString(root[:]); got != g.want {
			t.Errorf("%s: root %s, want %s", g.name, got, g.want)
		}
	}
}
