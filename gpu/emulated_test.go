package gpu

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// devnetVRAM is a VRAM workload shaped as challenge.DefaultVRAMSizing
// shapes one (a block per lane, 64 reads per lane, 64 rounds per block)
// over 1,024 blocks.
var devnetVRAM = VRAMParams{Lanes: 1024, Blocks: 1, Rounds: 64, Reads: 64}

// TestEmulatedBitIdentical: every answer of an emulated device, with its
// memory or without enough, is the CPU backend's, bit for bit.
func TestEmulatedBitIdentical(t *testing.T) {
	ctx := t.Context()
	cpu := NewCPU(WithWorkers(2))
	seed := Seed{7, 1}
	shape := Shape{N: 16, K: 64, M: 32}
	fast := Budget{Model: "test", Int8OPS: 1e12, BF16FLOPS: 1e12, HashesPerSec: 1e12, MemBytes: devnetVRAM.Bytes()}
	short := fast
	short.MemBytes /= 2
	for _, b := range []Budget{fast, short} {
		e, err := NewEmulated(cpu, b)
		if err != nil {
			t.Fatal(err)
		}
		wantC, wantL, _ := cpu.MatMulInt8(ctx, seed, shape)
		gotC, gotL, err := e.MatMulInt8(ctx, seed, shape)
		if err != nil || !slices.Equal(gotC.Data, wantC.Data) || !slices.Equal(gotL, wantL) {
			t.Errorf("int8 product differs (%v)", err)
		}
		if l, err := e.LeavesInt8(ctx, seed, shape); err != nil || !slices.Equal(l, wantL) {
			t.Errorf("int8 leaves differ (%v)", err)
		}
		if r, err := e.RowsInt8(ctx, seed, shape, []int{3, 9}); err != nil || !slices.Equal(r.Row(1), wantC.Row(9)) {
			t.Errorf("int8 rows differ (%v)", err)
		}
		wantF, wantFL, _ := cpu.MatMulBF16(ctx, seed, shape)
		gotF, gotFL, err := e.MatMulBF16(ctx, seed, shape)
		if err != nil || !slices.Equal(gotF.Data, wantF.Data) || !slices.Equal(gotFL, wantFL) {
			t.Errorf("bf16 product differs (%v)", err)
		}
		wantO, wantVL, _ := cpu.VRAM(ctx, seed, devnetVRAM)
		gotO, gotVL, err := e.VRAM(ctx, seed, devnetVRAM)
		if err != nil || !slices.Equal(gotO, wantO) || !slices.Equal(gotVL, wantVL) {
			t.Errorf("VRAM with %d of %d bytes differs (%v)", b.MemBytes, devnetVRAM.Bytes(), err)
		}
	}
}

// TestEmulatedVRAMMemoryBudget: a device holding half the blocks of a VRAM
// workload recomputes every block it does not hold at each read of it, so
// it takes challenge.VRAMCheatFactor(½, 64, 64) = 16.75 times as long as
// the same device with all the memory; its misses are counted, not
// estimated, and are about half the reads.
func TestEmulatedVRAMMemoryBudget(t *testing.T) {
	ctx := t.Context()
	cpu := NewCPU(WithWorkers(2))
	p := devnetVRAM
	// 100 ms for the whole workload with all of its memory.
	rate := p.Hashes() / 0.1
	full, _ := NewEmulated(cpu, Budget{Int8OPS: 1, BF16FLOPS: 1, HashesPerSec: rate, MemBytes: p.Bytes()})
	half, _ := NewEmulated(cpu, Budget{Int8OPS: 1, BF16FLOPS: 1, HashesPerSec: rate, MemBytes: p.Bytes() / 2})
	seed := Seed{3}
	start := time.Now()
	if _, _, err := full.VRAM(ctx, seed, p); err != nil {
		t.Fatal(err)
	}
	tFull := time.Since(start)
	start = time.Now()
	if _, _, err := half.VRAM(ctx, seed, p); err != nil {
		t.Fatal(err)
	}
	tHalf := time.Since(start)

	_, _, misses, err := vramCounting(ctx, seed, p, HeldBlocks(p, p.Bytes()/2), VRAMCountingMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	reads := float64(p.Lanes) * float64(p.Reads)
	if f := float64(misses) / reads; math.Abs(f-0.5) > 0.03 {
		t.Errorf("%d misses of %.0f reads: %.3f, want about half", misses, reads, f)
	}
	factor := EmulatedVRAMHashes(p, HeldBlocks(p, p.Bytes()/2), misses) / p.Hashes()
	// The formula of challenge.VRAMCheatFactor at q = ½, R = c = 64.
	if want := (0.5*64 + 64*(1+0.5*64)) / 128; math.Abs(factor-want)/want > 0.03 {
		t.Errorf("counted factor %.2f, the expected %.2f", factor, want)
	}
	wantHalf := time.Duration(factor * 0.1 * float64(time.Second))
	t.Logf("all memory %v, half %v (counted factor %.2f: %v)", tFull.Round(time.Millisecond), tHalf.Round(time.Millisecond), factor, wantHalf.Round(time.Millisecond))
	if tFull < 100*time.Millisecond || tFull > 400*time.Millisecond {
		t.Errorf("with all its memory the workload took %v, want its 100 ms", tFull)
	}
	if tHalf < wantHalf || tHalf > wantHalf+400*time.Millisecond {
		t.Errorf("with half its memory the workload took %v, want %v", tHalf, wantHalf)
	}
}

// TestEmulatedOneAtATime: the device runs one workload at a time, so two
// products given together finish one product's time apart; a cancelled
// one returns the context's error and gives its time back.
func TestEmulatedOneAtATime(t *testing.T) {
	ctx := t.Context()
	shape := Shape{N: 8, K: 64, M: 32}
	// 80 ms per product.
	e, _ := NewEmulated(NewCPU(WithWorkers(1)), Budget{Int8OPS: 2 * shape.MACs() / 0.08, BF16FLOPS: 1, HashesPerSec: 1})
	start := time.Now()
	var wg sync.WaitGroup
	done := make([]time.Duration, 2)
	for i := range done {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := e.MatMulInt8(ctx, Seed{byte(i)}, shape); err != nil {
				t.Error(err)
			}
			done[i] = time.Since(start)
		}()
	}
	wg.Wait()
	slices.Sort(done)
	if done[0] < 80*time.Millisecond || done[1] < 160*time.Millisecond || done[1] > 400*time.Millisecond {
		t.Errorf("two products finished at %v, want about 80 ms and 160 ms", done)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, _, err := e.MatMulInt8(cctx, Seed{9}, shape); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled product: %v", err)
	}
	start = time.Now()
	if _, _, err := e.MatMulInt8(ctx, Seed{9}, shape); err != nil || time.Since(start) > 200*time.Millisecond {
		t.Errorf("after a cancelled product the next took %v (%v), want about 80 ms", time.Since(start), err)
	}
	if _, err := NewEmulated(NewCPU(), Budget{Int8OPS: 1}); !errors.Is(err, ErrBudget) {
		t.Errorf("budget without rates: %v", err)
	}
}

// TestDevnetCatalog: every catalog entry has an emulated twin whose
// figures are the entry's scaled, with the ratios between models kept,
// resolvable only in the devnet catalog.
func TestDevnetCatalog(t *testing.T) {
	s := DevnetScale{Compute: 1e-5, Memory: 1e-7}
	c := DevnetCatalog(s)
	for _, d := range Catalog {
		e, ok := c.Lookup(DevnetPrefix + d.Model)
		if !ok {
			t.Fatalf("%s has no emulated twin", d.Model)
		}
		if e.INT8TOPS != d.INT8TOPS*s.Compute || e.HashGHps != d.HashGHps*s.Compute || e.VRAMBytes != uint64(float64(d.VRAMBytes)*s.Memory) {
			t.Errorf("%s: %+v", e.Model, e)
		}
		if real, ok := c.Lookup(d.Model); !ok || real.INT8TOPS != d.INT8TOPS {
			t.Errorf("%s changed in the devnet catalog", d.Model)
		}
		if _, ok, err := ResolveModel(DevnetPrefix + d.Model); ok || !errors.Is(err, ErrAmbiguousModel) {
			t.Errorf("%s resolves in the default catalog: %v %v", DevnetPrefix+d.Model, ok, err)
		}
	}
	big, _ := c.Lookup("devnet A100 80GB SXM")
	small, _ := c.Lookup("devnet a100-40gb-sxm")
	if big.HashGHps != small.HashGHps || big.VRAMBytes != 2*small.VRAMBytes {
		t.Errorf("A100 siblings: %+v, %+v", big, small)
	}
}

// TestEmulatedOverruns: a budget faster than the host makes every
// workload an overrun; one far slower than the host makes none.
func TestEmulatedOverruns(t *testing.T) {
	ctx := t.Context()
	cpu := NewCPU(WithWorkers(1))
	shape := Shape{N: 64, K: 256, M: 256}
	// 10¹⁸ op/s: no host finishes 8·10⁶ operations in 8 attoseconds.
	fast, _ := NewEmulated(cpu, Budget{Int8OPS: 1e18, BF16FLOPS: 1e18, HashesPerSec: 1e18})
	// 2·10⁸ op/s: 40 ms of device time, far more than the host takes.
	slow, _ := NewEmulated(cpu, Budget{Int8OPS: 2e8, BF16FLOPS: 2e8, HashesPerSec: 2e8})
	for range 3 {
		for _, e := range []*Emulated{fast, slow} {
			if _, _, err := e.MatMulInt8(ctx, Seed{1}, shape); err != nil {
				t.Fatal(err)
			}
		}
	}
	if w, o := fast.Overruns(); w != 3 || o != 3 {
		t.Errorf("budget faster than the host: %d overruns of %d workloads, want 3 of 3", o, w)
	}
	if w, o := slow.Overruns(); w != 3 || o != 0 {
		t.Errorf("budget slower than the host: %d overruns of %d workloads, want 0 of 3", o, w)
	}
}

// TestEmulatedJitter: with jitter σ, device times vary as exp(σ·Z): the
// same seed gives the same times, the spread of log-times is about σ,
// and jitter outside [0, 1] is refused.
func TestEmulatedJitter(t *testing.T) {
	times := func(seed uint64) []time.Duration {
		e, err := NewEmulated(NewCPU(), Budget{Int8OPS: 1, BF16FLOPS: 1, HashesPerSec: 1, Jitter: 0.1, JitterSeed: seed})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]time.Duration, 2000)
		var at time.Time
		for i := range out {
			end := e.reserve(at, time.Second)
			out[i], at = end.Sub(at), end
		}
		return out
	}
	a, b, c := times(1), times(1), times(2)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatal("jitter is not a function of its seed")
	}
	var sum, sq float64
	for _, d := range a {
		l := math.Log(d.Seconds())
		sum += l
		sq += l * l
	}
	n := float64(len(a))
	mean, sd := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n))
	if math.Abs(mean) > 0.01 || math.Abs(sd-0.1) > 0.01 {
		t.Errorf("log device time: mean %.4f sd %.4f, want 0 and 0.1", mean, sd)
	}
	for _, j := range []float64{-0.1, 1.5, math.NaN()} {
		if _, err := NewEmulated(NewCPU(), Budget{Int8OPS: 1, BF16FLOPS: 1, HashesPerSec: 1, Jitter: j}); !errors.Is(err, ErrBudget) {
			t.Errorf("jitter %v: err %v, want ErrBudget", j, err)
		}
	}
}

// TestVRAMCountingBounded: past its memory bound the host holds only the
// device's blocks and recomputes the others at each read; the outputs and
// the miss count are those of the unbounded run.
func TestVRAMCountingBounded(t *testing.T) {
	p := VRAMParams{Lanes: 64, Blocks: 4, Rounds: 8, Reads: 16}
	held := uint64(100)
	wantO, wantL, wantM, err := vramCounting(t.Context(), Seed{5}, p, held, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	gotO, gotL, gotM, err := vramCounting(t.Context(), Seed{5}, p, held, 64*VRAMBlockBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotO, wantO) || !slices.Equal(gotL, wantL) || gotM != wantM {
		t.Errorf("bounded run differs: misses %d, want %d", gotM, wantM)
	}
	if wantM == 0 {
		t.Error("no misses counted with 100 of 256 blocks held")
	}
}

// TestEmulatedVRAMHostBound: a VRAM workload whose lane outputs alone
// exceed the emulation bound (a claim far above the device) is refused
// with ErrMemory before anything is allocated, as the CPU backend does.
func TestEmulatedVRAMHostBound(t *testing.T) {
	e, _ := NewEmulated(NewCPU(), Budget{Int8OPS: 1, BF16FLOPS: 1, HashesPerSec: 1e9, MemBytes: 1 << 20})
	p := VRAMParams{Lanes: VRAMCountingMaxBytes/(2*VRAMBlockBytes) + 1, Blocks: 1, Rounds: 64, Reads: 64}
	if _, _, err := e.VRAM(t.Context(), Seed{1}, p); !errors.Is(err, ErrMemory) {
		t.Fatalf("err %v, want ErrMemory", err)
	}
}
