//go:build linux && cgo

package cuda

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"github.com/poai-network/poai/gpu"
)

// Count returns the number of CUDA devices, or an error wrapping
// ErrNoDriver.
func Count() (int, error) {
	if err := loadDriver(); err != nil {
		return 0, err
	}
	return deviceCount()
}

// VRAMTimes splits a VRAM run's device time.
type VRAMTimes struct {
	Fill, Lanes time.Duration
}

// VRAM implements gpu.Backend: every block in device memory (Lanes·Blocks·
// 32 bytes in one allocation), then every lane's read chain.
func (b *Backend) VRAM(ctx context.Context, seed gpu.Seed, p gpu.VRAMParams) (outputs, leaves [][32]byte, err error) {
	outputs, leaves, _, err = b.VRAMTimed(ctx, seed, p)
	return outputs, leaves, err
}

// VRAMTimed is VRAM that also reports the fill and lane times.
func (b *Backend) VRAMTimed(ctx context.Context, seed gpu.Seed, p gpu.VRAMParams) (outputs, leaves [][32]byte, t VRAMTimes, err error) {
	if err := p.Validate(); err != nil {
		return nil, nil, t, err
	}
	total := uint64(p.Lanes) * uint64(p.Blocks)
	fillMsg := append(append([]byte(vramTag), seed[:]...), make([]byte, 8)...)
	laneMsg := append(append(append([]byte(vramTag), seed[:]...), "lane"...), make([]byte, 8)...)
	fillT, laneT := template(fillMsg), template(laneMsg)
	outputs = make([][32]byte, p.Lanes)
	leaves = make([][32]byte, p.Lanes)
	err = b.do(func() error {
		mem, err := alloc(total * gpu.VRAMBlockBytes)
		if err != nil {
			return err
		}
		defer free(mem)
		tm, err := newTimer()
		if err != nil {
			return err
		}
		defer tm.close()
		if err := tm.begin(); err != nil {
			return err
		}
		const fillStep = 1 << 26
		for g0 := uint64(0); g0 < total; g0 += fillStep {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(fillStep, total-g0)
			if err := launch(b.k["vram_fill"], blocksFor(n, 256), 1, 256, []uint64{uint64(mem), g0, n, uint64(p.Rounds)}, fillT); err != nil {
				return err
			}
		}
		ms, err := tm.end()
		if err != nil {
			return err
		}
		t.Fill = time.Duration(ms * float64(time.Millisecond))
		step := min(uint64(p.Lanes), 1<<22)
		outs, err := alloc(step * 32)
		if err != nil {
			return err
		}
		defer free(outs)
		lvs, err := alloc(step * 32)
		if err != nil {
			return err
		}
		defer free(lvs)
		words := make([]uint32, step*8)
		start := time.Now()
		for l0 := uint64(0); l0 < uint64(p.Lanes); l0 += step {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(step, uint64(p.Lanes)-l0)
			if err := launch(b.k["vram_lanes"], blocksFor(n, 128), 1, 128,
				[]uint64{uint64(mem), total, l0, n, uint64(p.Reads), uint64(outs), uint64(lvs)}, laneT); err != nil {
				return err
			}
			if err := copyToHost(unsafe.Pointer(&words[0]), outs, n*32); err != nil {
				return err
			}
			leafWords(words[:n*8], outputs[l0:l0+n])
			if err := copyToHost(unsafe.Pointer(&words[0]), lvs, n*32); err != nil {
				return err
			}
			leafWords(words[:n*8], leaves[l0:l0+n])
		}
		t.Lanes = time.Since(start)
		return synchronize()
	})
	if err != nil {
		return nil, nil, t, err
	}
	return outputs, leaves, t, nil
}

// GEMMTime runs one product's GEMM alone (A rows and Bᵀ generated once
// beforehand, no hashing) reps times on the named path ("cublaslt" or
// "embedded") and returns the mean time per product: the figure to set
// beside cuBLAS's on the same shape. shape.N is rounded up to 128 rows and
// must fit one chunk.
func (b *Backend) GEMMTime(bf16 bool, s gpu.Shape, path string, reps int) (time.Duration, error) {
	g := kindInt8
	if bf16 {
		g = kindBF16
	}
	var d time.Duration
	err := b.do(func() error {
		p, err := b.newGEMM(g, gpu.Seed{1}, s, path == "embedded")
		if err != nil {
			return err
		}
		defer p.free()
		if path == "cublaslt" && !p.useLt {
			return b.ltErr
		}
		rows := (uint64(s.N) + 127) / 128 * 128
		if rows > p.chunkRows {
			rows = p.chunkRows
		}
		k := uint64(s.K)
		if err := launch(b.k[g.fillRows], blocksFor(rows*(k/(16/g.elem)), 256), 1, 256,
			[]uint64{uint64(p.a), 0, rows, k, uint64(g.matA), 1, 2, 3}, nil); err != nil {
			return err
		}
		if err := b.gemm(p, rows); err != nil { // warm-up
			return err
		}
		if path == "cublaslt" && !p.useLt {
			return fmt.Errorf("cuBLASLt has no algorithm for %dx%dx%d", s.N, s.K, s.M)
		}
		tm, err := newTimer()
		if err != nil {
			return err
		}
		defer tm.close()
		if err := tm.begin(); err != nil {
			return err
		}
		for range reps {
			if err := b.gemm(p, rows); err != nil {
				return err
			}
		}
		ms, err := tm.end()
		d = time.Duration(ms / float64(reps) * float64(time.Millisecond))
		return err
	})
	return d, err
}

// CopyBandwidth times a device-to-device copy of n bytes and returns
// bytes moved per second, counting each byte read and written (2n).
func (b *Backend) CopyBandwidth(n uint64, reps int) (float64, error) {
	var bw float64
	err := b.do(func() error {
		src, err := alloc(n)
		if err != nil {
			return err
		}
		defer free(src)
		dst, err := alloc(n)
		if err != nil {
			return err
		}
		defer free(dst)
		if err := copyDevice(dst, src, n); err != nil {
			return err
		}
		tm, err := newTimer()
		if err != nil {
			return err
		}
		defer tm.close()
		if err := tm.begin(); err != nil {
			return err
		}
		for range reps {
			if err := copyDevice(dst, src, n); err != nil {
				return err
			}
		}
		ms, err := tm.end()
		bw = 2 * float64(n) * float64(reps) / (ms / 1e3)
		return err
	})
	return bw, err
}
