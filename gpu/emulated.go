package gpu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Budget is what an emulated device can do: the rates it sustains on each
// workload and the memory it holds.
type Budget struct {
	// Model is the name the device reports (Info.Model).
	Model string
	// Int8OPS and BF16FLOPS are its rates on the int8 and bf16 products,
	// in operations per second (a multiply-add counts 2).
	Int8OPS, BF16FLOPS float64
	// HashesPerSec is its rate on the VRAM workload, in SHA-256
	// compressions per second.
	HashesPerSec float64
	// LLMInt8OPS and LLMBytesPerSec are its int8 rate (operations per
	// second) and memory bandwidth (bytes per second) on the llm
	// workload, which Occupy's callers time by (0: Int8OPS, and no
	// bandwidth bound).
	LLMInt8OPS, LLMBytesPerSec float64
	// MemBytes is the memory it holds, in bytes.
	MemBytes uint64
	// Jitter is σ of the device's run-to-run variation: each workload's
	// time is multiplied by exp(σ·Z), Z a standard normal drawn from a
	// PCG stream seeded with JitterSeed (a log-normal factor: median 1,
	// 95 % of draws within exp(±1.96σ)). 0 is a device that never varies.
	Jitter     float64
	JitterSeed uint64
}

// ErrBudget reports a budget without a positive rate for every workload,
// or with a jitter outside [0, 1].
var ErrBudget = errors.New("emulated device budget needs positive rates")

// Emulated is a device emulated on another backend (the CPU): the inner
// backend computes the real answer, bit for bit, and the budget decides
// when it may leave. Each workload costs its operations over the budget's
// rate, times the budget's jitter; the device runs one workload at a
// time, so a workload that
// arrives while another runs waits for it; an answer is returned no
// sooner than its emulated finish (and no sooner than the inner backend
// produced it: the inner backend must be faster than the budget for the
// emulation to be faithful).
//
// Memory is enforced by the VRAM workload's time-memory trade-off (see
// VRAMParams): a device whose budget holds fewer blocks than the workload
// fills keeps the first MemBytes/VRAMBlockBytes of them, fills only those
// (Rounds hashes each), and pays Rounds hashes to recompute a block it
// does not hold at every read of one (EmulatedVRAMHashes), on top of the
// read's own hash. The products are not bounded by memory: they stream.
//
// Emulated implements Backend and Streamer, and is safe for concurrent
// use.
type Emulated struct {
	inner Backend
	b     Budget

	mu   sync.Mutex
	busy time.Time // when the device finishes what it was given
	rng  *rand.Rand

	workloads, overruns atomic.Uint64
}

// Overruns returns how many workloads the device has run and how many of
// them the inner backend finished after their emulated end: an overrun
// means the host was slower than the budget (a busy or too small host),
// and the answer left late for a reason that is not the emulated device's.
// A test bed with many overruns measures its host, not its nodes.
func (e *Emulated) Overruns() (workloads, overruns uint64) {
	return e.workloads.Load(), e.overruns.Load()
}

// NewEmulated returns a device with budget b whose answers inner
// computes. It returns ErrBudget for a budget without positive rates.
func NewEmulated(inner Backend, b Budget) (*Emulated, error) {
	if !(b.Int8OPS > 0 && b.BF16FLOPS > 0 && b.HashesPerSec > 0) || !(b.Jitter >= 0 && b.Jitter <= 1) {
		return nil, fmt.Errorf("%w: %+v", ErrBudget, b)
	}
	return &Emulated{inner: inner, b: b, rng: rand.New(rand.NewPCG(b.JitterSeed, 0x706f6169))}, nil
}

// Budget returns the device's budget.
func (e *Emulated) Budget() Budget { return e.b }

// Info implements Backend: backend "emulated", the budget's model and
// memory, one device.
func (e *Emulated) Info() Info {
	return Info{Backend: "emulated", Model: e.b.Model, Devices: 1, MemoryBytes: e.b.MemBytes}
}

// reserve books d of device time for a workload that arrived at from,
// after whatever the device was given before, and returns when it ends.
func (e *Emulated) reserve(from time.Time, d time.Duration) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.b.Jitter > 0 {
		d = time.Duration(float64(d) * math.Exp(e.b.Jitter*e.rng.NormFloat64()))
	}
	start := from
	if e.busy.After(start) {
		start = e.busy
	}
	e.busy = start.Add(d)
	return e.busy
}

// release gives back the device time booked up to end when its workload
// was cancelled at now, unless later work was booked after it.
func (e *Emulated) release(end, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.busy.Equal(end) {
		e.busy = now
	}
}

// hold waits until end, the emulated finish of a workload; on
// cancellation it releases the rest of the booking and returns ctx.Err().
func (e *Emulated) hold(ctx context.Context, end time.Time) error {
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		e.release(end, time.Now())
		return ctx.Err()
	}
}

// gemmTime returns the emulated time of macs multiply-adds at rate ops/s.
func gemmTime(macs, rate float64) time.Duration {
	return time.Duration(2 * macs / rate * float64(time.Second))
}

// run books d of device time, computes f on the inner backend, and
// returns once both are done.
func (e *Emulated) run(ctx context.Context, d time.Duration, f func() error) error {
	end := e.reserve(time.Now(), d)
	if err := f(); err != nil {
		e.release(end, time.Now())
		return err
	}
	e.count(end)
	return e.hold(ctx, end)
}

// Occupy books the device time d returns for the budget, computes f on
// the host, and returns once both are done: for a workload computed
// outside the Backend methods (the llm workload, whose arithmetic is
// gpu/llm's reference), timed as the device would run it. A d of zero or
// less books nothing.
func (e *Emulated) Occupy(ctx context.Context, d func(Budget) time.Duration, f func() error) error {
	return e.run(ctx, max(d(e.b), 0), f)
}

// count counts a workload whose emulated end is end, and an overrun when
// the host finished it after then.
func (e *Emulated) count(end time.Time) {
	e.workloads.Add(1)
	if time.Now().After(end) {
		e.overruns.Add(1)
	}
}

// MatMulInt8 implements Backend: 2·N·K·M operations at Int8OPS.
func (e *Emulated) MatMulInt8(ctx context.Context, seed Seed, shape Shape) (c *Int32Matrix, leaves [][32]byte, err error) {
	err = e.run(ctx, gemmTime(shape.MACs(), e.b.Int8OPS), func() (err error) {
		c, leaves, err = e.inner.MatMulInt8(ctx, seed, shape)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return c, leaves, nil
}

// MatMulBF16 implements Backend: 2·N·K·M operations at BF16FLOPS.
func (e *Emulated) MatMulBF16(ctx context.Context, seed Seed, shape Shape) (c *Float32Matrix, leaves [][32]byte, err error) {
	err = e.run(ctx, gemmTime(shape.MACs(), e.b.BF16FLOPS), func() (err error) {
		c, leaves, err = e.inner.MatMulBF16(ctx, seed, shape)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return c, leaves, nil
}

// LeavesInt8 implements Streamer, at the cost of the whole product.
func (e *Emulated) LeavesInt8(ctx context.Context, seed Seed, shape Shape) (leaves [][32]byte, err error) {
	err = e.run(ctx, gemmTime(shape.MACs(), e.b.Int8OPS), func() (err error) {
		if st, ok := e.inner.(Streamer); ok {
			leaves, err = st.LeavesInt8(ctx, seed, shape)
		} else {
			_, leaves, err = e.inner.MatMulInt8(ctx, seed, shape)
		}
		return err
	})
	return leaves, err
}

// LeavesBF16 implements Streamer, at the cost of the whole product.
func (e *Emulated) LeavesBF16(ctx context.Context, seed Seed, shape Shape) (leaves [][32]byte, err error) {
	err = e.run(ctx, gemmTime(shape.MACs(), e.b.BF16FLOPS), func() (err error) {
		if st, ok := e.inner.(Streamer); ok {
			leaves, err = st.LeavesBF16(ctx, seed, shape)
		} else {
			_, leaves, err = e.inner.MatMulBF16(ctx, seed, shape)
		}
		return err
	})
	return leaves, err
}

// RowsInt8 implements Streamer: len(rows)·K·M multiply-adds.
func (e *Emulated) RowsInt8(ctx context.Context, seed Seed, shape Shape, rows []int) (out *Int32Matrix, err error) {
	err = e.run(ctx, gemmTime(float64(len(rows))*float64(shape.K)*float64(shape.M), e.b.Int8OPS), func() (err error) {
		if st, ok := e.inner.(Streamer); ok {
			out, err = st.RowsInt8(ctx, seed, shape, rows)
			return err
		}
		c, _, err := e.inner.MatMulInt8(ctx, seed, shape)
		if err != nil {
			return err
		}
		out = &Int32Matrix{Rows: len(rows), Cols: c.Cols, Data: make([]int32, 0, len(rows)*c.Cols)}
		for _, r := range rows {
			out.Data = append(out.Data, c.Row(r)...)
		}
		return nil
	})
	return out, err
}

// RowsBF16 implements Streamer: len(rows)·K·M multiply-adds.
func (e *Emulated) RowsBF16(ctx context.Context, seed Seed, shape Shape, rows []int) (out *Float32Matrix, err error) {
	err = e.run(ctx, gemmTime(float64(len(rows))*float64(shape.K)*float64(shape.M), e.b.BF16FLOPS), func() (err error) {
		if st, ok := e.inner.(Streamer); ok {
			out, err = st.RowsBF16(ctx, seed, shape, rows)
			return err
		}
		c, _, err := e.inner.MatMulBF16(ctx, seed, shape)
		if err != nil {
			return err
		}
		out = &Float32Matrix{Rows: len(rows), Cols: c.Cols, Data: make([]float32, 0, len(rows)*c.Cols)}
		for _, r := range rows {
			out.Data = append(out.Data, c.Row(r)...)
		}
		return nil
	})
	return out, err
}

// HeldBlocks returns how many of the VRAM workload's Lanes·Blocks blocks
// a device holding memBytes keeps: all of them, or memBytes/VRAMBlockBytes.
func HeldBlocks(p VRAMParams, memBytes uint64) uint64 {
	return min(uint64(p.Lanes)*uint64(p.Blocks), memBytes/VRAMBlockBytes)
}

// EmulatedVRAMHashes returns the SHA-256 compressions a device that holds
// the first held blocks spends on the VRAM workload, given misses, the
// reads (over every lane) of blocks it does not hold: held·Rounds for the
// fill, Lanes·Reads for the read chains, and misses·Rounds to recompute a
// missing block at each read of it. With every block held it is
// p.Hashes(); over an honest device's, it is challenge.VRAMCheatFactor in
// expectation (misses ≈ (1 − q)·Lanes·Reads for q = held/(Lanes·Blocks)).
func EmulatedVRAMHashes(p VRAMParams, held, misses uint64) float64 {
	return float64(held)*float64(p.Rounds) + float64(p.Lanes)*float64(p.Reads) + float64(misses)*float64(p.Rounds)
}

// VRAM implements Backend. With the budget's memory at least p.Bytes() it
// runs the inner backend's VRAM and costs p.Hashes(); with less, it runs
// the read chains itself, counting every read of a block beyond the ones
// it holds (HeldBlocks), and costs EmulatedVRAMHashes. Either way the
// outputs are the CPU backend's, bit for bit: the host computes every
// block, and the budget decides how long that would have taken.
func (e *Emulated) VRAM(ctx context.Context, seed Seed, p VRAMParams) (outputs, leaves [][32]byte, err error) {
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	held := HeldBlocks(p, e.b.MemBytes)
	total := uint64(p.Lanes) * uint64(p.Blocks)
	if held == total {
		err = e.run(ctx, hashTime(p.Hashes(), e.b.HashesPerSec), func() (err error) {
			outputs, leaves, err = e.inner.VRAM(ctx, seed, p)
			return err
		})
		if err != nil {
			return nil, nil, err
		}
		return outputs, leaves, nil
	}
	if need := 2 * VRAMBlockBytes * uint64(p.Lanes); need > VRAMCountingMaxBytes {
		// The lanes' outputs and leaves alone would not fit the host's
		// bound (a claim far above the device): as the CPU backend does.
		return nil, nil, fmt.Errorf("%w: %d bytes of lane outputs, emulation limit %d", ErrMemory, need, uint64(VRAMCountingMaxBytes))
	}
	arrived := time.Now()
	outputs, leaves, misses, err := vramCounting(ctx, seed, p, held, VRAMCountingMaxBytes)
	if err != nil {
		return nil, nil, err
	}
	end := e.reserve(arrived, hashTime(EmulatedVRAMHashes(p, held, misses), e.b.HashesPerSec))
	e.count(end)
	if err := e.hold(ctx, end); err != nil {
		return nil, nil, err
	}
	return outputs, leaves, nil
}

// hashTime returns the emulated time of hashes compressions at rate per
// second.
func hashTime(hashes, rate float64) time.Duration {
	return time.Duration(hashes / rate * float64(time.Second))
}

// VRAMCountingMaxBytes bounds the host memory an emulated device short of
// memory spends on one VRAM workload: up to it the host holds every block
// and computes each once; beyond it (a claim far above the device, such
// as a CPU claiming an H100) the host holds only the blocks the device
// holds and recomputes the others at each read, as the device would, so
// a claim cannot make the host allocate the claimed memory.
const VRAMCountingMaxBytes = 256 << 20

// vramCounting runs the VRAM workload on the host and counts the reads of
// blocks at or beyond index held: with every block in memory, or, when
// they would take more than maxBytes (VRAMCountingMaxBytes), with the first held
// blocks in memory and the others recomputed at each read.
func vramCounting(ctx context.Context, seed Seed, p VRAMParams, held, maxBytes uint64) (outputs, leaves [][32]byte, misses uint64, err error) {
	total := uint64(p.Lanes) * uint64(p.Blocks)
	stored := total
	if total*VRAMBlockBytes > maxBytes {
		stored = min(held, maxBytes/VRAMBlockBytes)
	}
	mem := make([][32]byte, stored)
	for g := range mem {
		if g%4096 == 0 && ctx.Err() != nil {
			return nil, nil, 0, ctx.Err()
		}
		mem[g] = VRAMBlock(seed, uint64(g), p.Rounds)
	}
	outputs = make([][32]byte, p.Lanes)
	leaves = make([][32]byte, p.Lanes)
	for l := range p.Lanes {
		if ctx.Err() != nil {
			return nil, nil, 0, ctx.Err()
		}
		outputs[l] = VRAMLane(seed, l, p, func(g uint64) [32]byte {
			if g >= held {
				misses++
			}
			if g >= stored {
				return VRAMBlock(seed, g, p.Rounds)
			}
			return mem[g]
		})
		leaves[l] = leafHashBytes(outputs[l][:])
	}
	return outputs, leaves, misses, nil
}
