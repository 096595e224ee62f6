//go:build linux && cgo

package cuda

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/poai-network/poai/gpu"
)

// open returns a backend on device 0, or skips the test with the reason
// when this machine has no usable CUDA driver or device. With
// POAI_REQUIRE_GPU=1 (scripts/gpu-check.sh) a missing GPU fails instead.
func open(t *testing.T, opts Options) *Backend {
	t.Helper()
	b, err := Open(opts)
	if err != nil {
		if os.Getenv("POAI_REQUIRE_GPU") == "" && (errors.Is(err, ErrNoDriver) || errors.Is(err, ErrNoDevice)) {
			t.Skipf("no CUDA GPU here: %v", err)
		}
		t.Fatalf("open CUDA device: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// paths returns a backend per GEMM path this machine has: cuBLASLt (when
// it loads) and the embedded kernels.
func paths(t *testing.T) map[string]*Backend {
	out := map[string]*Backend{"embedded": open(t, Options{CublasLt: "off"})}
	if lt := open(t, Options{}); lt.lt {
		out["cublaslt"] = lt
	} else {
		t.Logf("cuBLASLt not loaded: %v", lt.ltErr)
	}
	return out
}

func TestDeviceInfo(t *testing.T) {
	b := open(t, Options{})
	d := b.Device()
	if d.Name == "" || d.TotalBytes == 0 || d.FreeBytes == 0 || d.FreeBytes > d.TotalBytes || d.ComputeMajor < 8 || d.Multiprocessors == 0 {
		t.Fatalf("implausible device info %+v", d)
	}
	t.Logf("%+v", d)
}

// TestInt8MatchesCPU: every GEMM path gives the CPU backend's C and leaves
// bit for bit, on shapes with padded row tiles.
func TestInt8MatchesCPU(t *testing.T) {
	cpu := gpu.NewCPU()
	ctx := context.Background()
	seed := gpu.Seed{9, 8, 7, 6, 5, 4, 3, 2, 1}
	for name, b := range paths(t) {
		for _, s := range []gpu.Shape{{N: 256, K: 512, M: 512}, {N: 200, K: 512, M: 256}, {N: 1000, K: 1024, M: 128}} {
			if b.GEMMPath(false, s) != name {
				t.Fatalf("%v ran on %s, want %s", s, b.GEMMPath(false, s), name)
			}
			got, gl, err := b.MatMulInt8(ctx, seed, s)
			if err != nil {
				t.Fatalf("%s %v: %v", name, s, err)
			}
			want, wl, err := cpu.MatMulInt8(ctx, seed, s)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want.Data {
				if got.Data[i] != want.Data[i] {
					t.Fatalf("%s %v: C[%d][%d] = %d, want %d", name, s, i/s.M, i%s.M, got.Data[i], want.Data[i])
				}
			}
			for i := range wl {
				if gl[i] != wl[i] {
					t.Fatalf("%s %v: leaf %d differs", name, s, i)
				}
			}
		}
	}
}

func TestVRAMMatchesCPU(t *testing.T) {
	b := open(t, Options{})
	ctx := context.Background()
	seed := gpu.Seed{42}
	p := gpu.VRAMParams{Lanes: 3000, Blocks: 50, Rounds: 16, Reads: 40}
	got, gl, err := b.VRAM(ctx, seed, p)
	if err != nil {
		t.Fatal(err)
	}
	want, wl, err := gpu.NewCPU().VRAM(ctx, seed, p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] || gl[i] != wl[i] {
			t.Fatalf("lane %d differs", i)
		}
	}
}

// TestStreamedMatchesCPU: leaves streamed in several chunks and rows
// recomputed for an opening equal the CPU's.
func TestStreamedMatchesCPU(t *testing.T) {
	ctx := context.Background()
	seed := gpu.Seed{5}
	s := gpu.Shape{N: 3000, K: 1024, M: 256}
	cpu := gpu.NewCPU()
	for name, b := range paths(t) {
		b.chunkBytes = 1 << 20 // several chunks
		leaves, err := b.LeavesInt8(ctx, seed, s)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cpu.LeavesInt8(ctx, seed, s)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if leaves[i] != want[i] {
				t.Fatalf("%s: leaf %d differs", name, i)
			}
		}
		idx := []int{0, 1, 127, 128, 2999}
		rows, err := b.RowsInt8(ctx, seed, s, idx)
		if err != nil {
			t.Fatal(err)
		}
		wrows, _ := cpu.RowsInt8(ctx, seed, s, idx)
		for i := range wrows.Data {
			if rows.Data[i] != wrows.Data[i] {
				t.Fatalf("%s: row value %d differs", name, i)
			}
		}
	}
}
