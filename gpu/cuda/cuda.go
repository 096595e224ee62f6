//go:build linux && cgo

package cuda

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/poai-network/poai/gpu"
)

// Backend runs proof workloads on one NVIDIA GPU through the CUDA driver
// API. It is safe for concurrent use; workloads on one device run one at a
// time. Results equal the CPU backend's bit for bit (int8, VRAM) or are the
// same fp32-accumulated products (bf16, within challenge.BF16Tolerance).
type Backend struct {
	mu         sync.Mutex
	h          *devHandle
	k          map[string]kernel
	lt         bool
	ltErr      error
	ordinal    int
	cpu        *gpu.CPU
	chunkBytes uint64
	// Copied from the device at Open, valid after Close.
	name              string
	total             uint64
	major, minor, sms int
	pci               [3]int
}

var kernelNames = []string{
	"fill_int8_rows", "fill_int8_bt", "fill_bf16_rows", "fill_bf16_bt",
	"gemm_int8", "gemm_bf16", "leaf_rows", "vram_fill", "vram_lanes",
}

// Open loads the driver, JIT-compiles the embedded kernels on device
// opts.Ordinal and, unless opts.CublasLt is "off", loads cuBLASLt for the
// GEMMs. It returns an error wrapping ErrNoDriver where no driver is
// installed, and other errors for a device that cannot be used.
func Open(opts Options) (*Backend, error) {
	if err := loadDriver(); err != nil {
		return nil, err
	}
	n, err := deviceCount()
	if err != nil {
		return nil, err
	}
	if opts.Ordinal < 0 || opts.Ordinal >= n {
		return nil, fmt.Errorf("cuda: device %d of %d: %w", opts.Ordinal, n, ErrNoDevice)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := openDevice(opts.Ordinal, PTX)
	if err != nil {
		return nil, err
	}
	if h.major < 8 {
		h.release()
		return nil, fmt.Errorf("cuda: %s has compute capability %d.%d; the kernels need 8.0 or later", h.name, h.major, h.minor)
	}
	b := &Backend{h: h, k: map[string]kernel{}, ordinal: opts.Ordinal, cpu: gpu.NewCPU(), chunkBytes: opts.ChunkBytes,
		name: h.name, total: h.total, major: h.major, minor: h.minor, sms: h.sms, pci: h.pci}
	if b.chunkBytes == 0 {
		b.chunkBytes = 4 << 30
	}
	for _, name := range kernelNames {
		k, err := h.kernel(name)
		if err != nil {
			h.release()
			return nil, err
		}
		b.k[name] = k
	}
	if opts.CublasLt != "off" {
		b.ltErr = loadCublasLt(opts.CublasLt)
		b.lt = b.ltErr == nil
	}
	return b, nil
}

// Close releases the device.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h != nil {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_ = b.h.bind()
		b.h.release()
		b.h = nil
	}
	return nil
}

// Info implements gpu.Backend. The device's name and memory are kept past
// Close.
func (b *Backend) Info() gpu.Info {
	return gpu.Info{Backend: "cuda", Model: b.name, Devices: 1, MemoryBytes: b.total}
}

// Device describes the device as the driver reports it.
func (b *Backend) Device() DeviceInfo {
	free, _, _ := b.withDevice(func() (uint64, uint64, error) { return b.h.memInfo() })
	return DeviceInfo{
		Ordinal: b.ordinal, Name: b.name, TotalBytes: b.total, FreeBytes: free,
		ComputeMajor: b.major, ComputeMinor: b.minor, Multiprocessors: b.sms,
		PCIDomain: uint32(b.pci[0]), PCIBus: uint32(b.pci[1]), PCIDevice: uint32(b.pci[2]),
		DriverVersion: driverVersion(), CublasLt: b.lt, CublasLtError: errString(b.ltErr),
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// withDevice runs fn with the device's context current on a locked OS
// thread, one caller at a time.
func (b *Backend) withDevice(fn func() (uint64, uint64, error)) (uint64, uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return 0, 0, fmt.Errorf("cuda: backend closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.h.bind(); err != nil {
		return 0, 0, err
	}
	return fn()
}

func (b *Backend) do(fn func() error) error {
	_, _, err := b.withDevice(func() (uint64, uint64, error) { return 0, 0, fn() })
	return err
}

func blocksFor(n uint64, threads uint64) uint32 { return uint32((n + threads - 1) / threads) }

// gemmKind holds what differs between the int8 and bf16 products.
type gemmKind struct {
	bf16            bool
	elem            uint64 // input element size, bytes
	fillRows, fillB string
	matA, matB      uint32
	kAlign          int
}

var (
	kindInt8 = gemmKind{elem: 1, fillRows: "fill_int8_rows", fillB: "fill_int8_bt", matA: gpu.MatrixA, matB: gpu.MatrixB, kAlign: 64}
	kindBF16 = gemmKind{bf16: true, elem: 2, fillRows: "fill_bf16_rows", fillB: "fill_bf16_bt", matA: gpu.MatrixBF16A, matB: gpu.MatrixBF16B, kAlign: 32}
)

// embeddedFits reports whether the embedded GEMM kernel takes the shape's
// k and m (rows are padded to the 128-row tile).
func (g gemmKind) embeddedFits(s gpu.Shape) bool { return s.M%128 == 0 && s.K%g.kAlign == 0 }

// ltFits reports whether cuBLASLt's TN tensor-core layouts take the shape.
func (g gemmKind) ltFits(s gpu.Shape) bool { return s.M%16 == 0 && s.K%16 == 0 }

// GEMMPath names the implementation that runs shape: "cublaslt",
// "embedded", or "cpu" when neither device path takes it.
func (b *Backend) GEMMPath(bf16 bool, s gpu.Shape) string {
	g := kindInt8
	if bf16 {
		g = kindBF16
	}
	switch {
	case b.lt && g.ltFits(s):
		return "cublaslt"
	case g.embeddedFits(s):
		return "embedded"
	}
	return "cpu"
}

// gemmPlan is one product in device memory: Bᵀ, a chunk of A rows and of
// C, and the leaves.
type gemmPlan struct {
	g         gemmKind
	s         gpu.Shape
	useLt     bool
	chunkRows uint64
	bt, a, c  devPtr
	leaves    devPtr
	ws        devPtr
	wsSize    uint64
	key       [2]uint32
	stream    uint32
}

func (b *Backend) newGEMM(g gemmKind, seed gpu.Seed, s gpu.Shape, forceEmbedded bool) (*gemmPlan, error) {
	p := &gemmPlan{g: g, s: s, useLt: b.lt && g.ltFits(s) && !forceEmbedded}
	if !p.useLt && !g.embeddedFits(s) {
		return nil, fmt.Errorf("%w: %dx%dx%d does not fit the CUDA kernels (k %% %d, m %% 128)", gpu.ErrShape, s.N, s.K, s.M, g.kAlign)
	}
	p.key, p.stream = seed.PhiloxKey()
	k, m := uint64(s.K), uint64(s.M)
	perRow := k*g.elem + 4*m + 32
	rows := (uint64(s.N) + 127) / 128 * 128
	p.chunkRows = max(128, min(rows, b.chunkBytes/perRow/128*128, 1<<22))
	var err error
	defer func() {
		if err != nil {
			p.free()
		}
	}()
	if p.bt, err = alloc(k * m * g.elem); err != nil {
		return nil, err
	}
	if p.a, err = alloc(p.chunkRows * k * g.elem); err != nil {
		return nil, err
	}
	if p.c, err = alloc(p.chunkRows * m * 4); err != nil {
		return nil, err
	}
	if p.leaves, err = alloc(p.chunkRows * 32); err != nil {
		return nil, err
	}
	if p.useLt {
		p.wsSize = 32 << 20
		if p.ws, err = alloc(p.wsSize); err != nil {
			return nil, err
		}
	}
	err = launch(b.k[g.fillB], blocksFor(k*(m/(16/g.elem)), 256), 1, 256,
		[]uint64{uint64(p.bt), k, m, uint64(g.matB), uint64(p.key[0]), uint64(p.key[1]), uint64(p.stream)}, nil)
	return p, err
}

func (p *gemmPlan) free() {
	for _, d := range []devPtr{p.bt, p.a, p.c, p.leaves, p.ws} {
		free(d)
	}
}

// chunk computes rows [row0, row0+n) of C (n ≤ chunkRows, row0 a
// multiple of 128 when the embedded kernel runs) into p.c and their leaves
// into p.leaves.
func (b *Backend) chunk(p *gemmPlan, row0, n uint64) error {
	k, m := uint64(p.s.K), uint64(p.s.M)
	padded := (n + 127) / 128 * 128
	perBlock := uint64(16) / p.g.elem
	if err := launch(b.k[p.g.fillRows], blocksFor(padded*(k/perBlock), 256), 1, 256,
		[]uint64{uint64(p.a), row0, padded, k, uint64(p.g.matA), uint64(p.key[0]), uint64(p.key[1]), uint64(p.stream)}, nil); err != nil {
		return err
	}
	if err := b.gemm(p, padded); err != nil {
		return err
	}
	return launch(b.k["leaf_rows"], blocksFor(n, 128), 1, 128, []uint64{uint64(p.c), n, m, uint64(p.leaves)}, nil)
}

// gemm multiplies the first rows of p.a by B into p.c.
func (b *Backend) gemm(p *gemmPlan, rows uint64) error {
	k, m := uint64(p.s.K), uint64(p.s.M)
	if p.useLt {
		err := ltMatMul(p.g.bf16, p.bt, p.a, p.c, rows, k, m, p.ws, p.wsSize)
		if err == nil || !p.g.embeddedFits(p.s) {
			return err
		}
		// cuBLASLt found no algorithm for this shape: the embedded
		// kernel takes it from here on.
		p.useLt = false
	}
	name := "gemm_int8"
	if p.g.bf16 {
		name = "gemm_bf16"
	}
	return launch(b.k[name], uint32(m/128), uint32(rows/128), 256, []uint64{uint64(p.a), uint64(p.bt), uint64(p.c), k, m}, nil)
}

// leafWords converts 8 big-endian state words per row into digests.
func leafWords(words []uint32, dst [][32]byte) {
	for i := range dst {
		for j := 0; j < 8; j++ {
			binary.BigEndian.PutUint32(dst[i][4*j:], words[8*i+j])
		}
	}
}

// run computes the product's leaves and, when keep is non-nil, copies C
// (n×m 32-bit values) into keep.
func (b *Backend) run(ctx context.Context, g gemmKind, seed gpu.Seed, s gpu.Shape, keep unsafe.Pointer, forceEmbedded bool) ([][32]byte, error) {
	if err := s.ValidateStreamed(); err != nil {
		return nil, err
	}
	leaves := make([][32]byte, s.N)
	err := b.do(func() error {
		p, err := b.newGEMM(g, seed, s, forceEmbedded)
		if err != nil {
			return err
		}
		defer p.free()
		words := make([]uint32, p.chunkRows*8)
		for row0 := uint64(0); row0 < uint64(s.N); row0 += p.chunkRows {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(p.chunkRows, uint64(s.N)-row0)
			if err := b.chunk(p, row0, n); err != nil {
				return err
			}
			if err := copyToHost(unsafe.Pointer(&words[0]), p.leaves, n*32); err != nil {
				return err
			}
			leafWords(words[:n*8], leaves[row0:row0+n])
			if keep != nil {
				dst := unsafe.Add(keep, row0*uint64(s.M)*4)
				if err := copyToHost(dst, p.c, n*uint64(s.M)*4); err != nil {
					return err
				}
			}
		}
		return synchronize()
	})
	if err != nil {
		return nil, err
	}
	return leaves, nil
}

// MatMulInt8 implements gpu.Backend. Shapes the device paths do not take
// run on the CPU backend.
func (b *Backend) MatMulInt8(ctx context.Context, seed gpu.Seed, s gpu.Shape) (*gpu.Int32Matrix, [][32]byte, error) {
	if b.GEMMPath(false, s) == "cpu" {
		return b.cpu.MatMulInt8(ctx, seed, s)
	}
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	c := &gpu.Int32Matrix{Rows: s.N, Cols: s.M, Data: make([]int32, s.N*s.M)}
	leaves, err := b.run(ctx, kindInt8, seed, s, unsafe.Pointer(&c.Data[0]), false)
	if err != nil {
		return nil, nil, err
	}
	return c, leaves, nil
}

// MatMulBF16 implements gpu.Backend.
func (b *Backend) MatMulBF16(ctx context.Context, seed gpu.Seed, s gpu.Shape) (*gpu.Float32Matrix, [][32]byte, error) {
	if b.GEMMPath(true, s) == "cpu" {
		return b.cpu.MatMulBF16(ctx, seed, s)
	}
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	c := &gpu.Float32Matrix{Rows: s.N, Cols: s.M, Data: make([]float32, s.N*s.M)}
	leaves, err := b.run(ctx, kindBF16, seed, s, unsafe.Pointer(&c.Data[0]), false)
	if err != nil {
		return nil, nil, err
	}
	return c, leaves, nil
}

// LeavesInt8 implements gpu.Streamer: the leaves of C = A·B, computed in
// chunks of rows on the device, never holding C whole, so n may be as
// large as gpu.Shape.ValidateStreamed allows.
func (b *Backend) LeavesInt8(ctx context.Context, seed gpu.Seed, s gpu.Shape) ([][32]byte, error) {
	if b.GEMMPath(false, s) == "cpu" {
		return b.cpu.LeavesInt8(ctx, seed, s)
	}
	return b.run(ctx, kindInt8, seed, s, nil, false)
}

// LeavesBF16 implements gpu.Streamer.
func (b *Backend) LeavesBF16(ctx context.Context, seed gpu.Seed, s gpu.Shape) ([][32]byte, error) {
	if b.GEMMPath(true, s) == "cpu" {
		return b.cpu.LeavesBF16(ctx, seed, s)
	}
	return b.run(ctx, kindBF16, seed, s, nil, false)
}

// RowsInt8 implements gpu.Streamer: the listed rows of C, computed on the
// device from A rows generated on the host.
func (b *Backend) RowsInt8(ctx context.Context, seed gpu.Seed, s gpu.Shape, rows []int) (*gpu.Int32Matrix, error) {
	if b.GEMMPath(false, s) == "cpu" {
		return b.cpu.RowsInt8(ctx, seed, s, rows)
	}
	if err := s.ValidateStreamed(); err != nil {
		return nil, err
	}
	a := make([]int8, len(rows)*s.K)
	for i, r := range rows {
		if r < 0 || r >= s.N {
			return nil, fmt.Errorf("%w: row %d outside [0,%d)", gpu.ErrShape, r, s.N)
		}
		gpu.FillInt8Row(a[i*s.K:(i+1)*s.K], seed, gpu.MatrixA, r)
	}
	out := &gpu.Int32Matrix{Rows: len(rows), Cols: s.M, Data: make([]int32, len(rows)*s.M)}
	if len(rows) == 0 {
		return out, nil
	}
	err := b.rows(kindInt8, seed, s, unsafe.Pointer(&a[0]), uint64(len(rows)), unsafe.Pointer(&out.Data[0]))
	return out, err
}

// RowsBF16 implements gpu.Streamer.
func (b *Backend) RowsBF16(ctx context.Context, seed gpu.Seed, s gpu.Shape, rows []int) (*gpu.Float32Matrix, error) {
	if b.GEMMPath(true, s) == "cpu" {
		return b.cpu.RowsBF16(ctx, seed, s, rows)
	}
	if err := s.ValidateStreamed(); err != nil {
		return nil, err
	}
	a := make([]uint16, len(rows)*s.K)
	for i, r := range rows {
		if r < 0 || r >= s.N {
			return nil, fmt.Errorf("%w: row %d outside [0,%d)", gpu.ErrShape, r, s.N)
		}
		gpu.FillBF16BitsRow(a[i*s.K:(i+1)*s.K], seed, gpu.MatrixBF16A, r)
	}
	out := &gpu.Float32Matrix{Rows: len(rows), Cols: s.M, Data: make([]float32, len(rows)*s.M)}
	if len(rows) == 0 {
		return out, nil
	}
	err := b.rows(kindBF16, seed, s, unsafe.Pointer(&a[0]), uint64(len(rows)), unsafe.Pointer(&out.Data[0]))
	return out, err
}

// rows multiplies n host-made A rows by the device's B and copies the n
// result rows to out.
func (b *Backend) rows(g gemmKind, seed gpu.Seed, s gpu.Shape, a unsafe.Pointer, n uint64, out unsafe.Pointer) error {
	return b.do(func() error {
		small := s
		small.N = int(n)
		p, err := b.newGEMM(g, seed, small, false)
		if err != nil {
			return err
		}
		defer p.free()
		padded := (n + 127) / 128 * 128
		// Rows past n are whatever the buffer held; their products are
		// computed and dropped.
		if err := copyToDevice(p.a, a, n*uint64(s.K)*g.elem); err != nil {
			return err
		}
		if err := b.gemm(p, padded); err != nil {
			return err
		}
		return copyToHost(out, p.c, n*uint64(s.M)*4)
	})
}

var _ gpu.Backend = (*Backend)(nil)
var _ gpu.Streamer = (*Backend)(nil)
