// Package cuda is poai's NVIDIA GPU backend. It loads the CUDA driver API
// (libcuda.so.1) at run time with dlopen, so the binary needs no CUDA
// toolkit and runs, falling back to the CPU backend, where no driver is
// installed. The kernels are CUDA C in kernels/poai.cu, compiled to PTX for
// compute capability 8.0 (`go generate ./gpu/cuda`, which needs nvcc) and
// embedded; the driver JIT-compiles them for the device at start. Where
// cuBLASLt (libcublasLt.so) is on the loader path, the GEMMs run through it
// and the embedded kernels serve otherwise; both are measured by
// `poai bench --backend cuda` and scripts/gpu-check.sh.
//
// One Backend drives one device; a node with several GPUs opens one per
// device. Without cgo or off Linux, Open returns ErrNoDriver.
package cuda

import (
	_ "embed"
	"encoding/binary"
	"errors"
)

//go:generate nvcc -ccbin g++-11 -arch=compute_80 -ptx kernels/poai.cu -o kernels/poai.ptx

// PTX is the embedded kernel module (PTX ISA for sm_80, JIT-compiled by the
// driver for the device at hand).
//
//go:embed kernels/poai.ptx
var PTX []byte

// ErrNoDriver reports that the CUDA driver (libcuda.so.1) is not installed
// or does not initialise, or that the binary was built without cgo.
var ErrNoDriver = errors.New("no CUDA driver")

// ErrNoDevice reports a device ordinal the driver does not have.
var ErrNoDevice = errors.New("no such CUDA device")

// Options configure Open.
type Options struct {
	// Ordinal is the device index (as CUDA numbers them).
	Ordinal int
	// CublasLt is the path of libcublasLt.so to load for the GEMMs; empty
	// looks up libcublasLt.so.{13,12,11} on the loader path; "off" keeps
	// to the embedded kernels.
	CublasLt string
	// ChunkBytes bounds the device memory a GEMM's working set of A and C
	// rows takes (default 4 GiB).
	ChunkBytes uint64
}

// DeviceInfo is what the driver reports of an opened device.
type DeviceInfo struct {
	Ordinal         int    `json:"ordinal"`
	Name            string `json:"name"`
	TotalBytes      uint64 `json:"total_bytes"`
	FreeBytes       uint64 `json:"free_bytes"`
	ComputeMajor    int    `json:"compute_major"`
	ComputeMinor    int    `json:"compute_minor"`
	Multiprocessors int    `json:"multiprocessors"`
	// PCIDomain, PCIBus and PCIDevice locate the device on the PCI bus.
	PCIDomain uint32 `json:"pci_domain"`
	PCIBus    uint32 `json:"pci_bus"`
	PCIDevice uint32 `json:"pci_device"`
	// DriverVersion is the CUDA driver API version (e.g. 13000 for 13.0).
	DriverVersion int `json:"driver_version"`
	// CublasLt reports whether the GEMMs run through cuBLASLt, and
	// CublasLtError why not.
	CublasLt      bool   `json:"cublaslt"`
	CublasLtError string `json:"cublaslt_error,omitempty"`
}

// vramTag must equal package gpu's domain tag for the VRAM workload (the
// emulation test checks it).
const vramTag = "poai/1/vram"

// template pads a one-block SHA-256 message (len ≤ 55 bytes) and returns
// its 16 big-endian words.
func template(msg []byte) []uint32 {
	var blk [64]byte
	copy(blk[:], msg)
	blk[len(msg)] = 0x80
	binary.BigEndian.PutUint64(blk[56:], uint64(len(msg))*8)
	w := make([]uint32, 16)
	for i := range w {
		w[i] = binary.BigEndian.Uint32(blk[4*i:])
	}
	return w
}
