package gpu

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
)

// Info describes the device a backend runs on, as the backend sees it.
type Info struct {
	// Backend names the implementation: "cpu", "cuda".
	Backend string
	// Model is the device model: a CPU brand string or a GPU name.
	Model string
	// Devices is the number of devices (GPUs, or CPU worker threads).
	Devices int
	// MemoryBytes is the memory available to workloads, in bytes.
	MemoryBytes uint64
}

// Backend runs proof workloads on one device. Implementations must be safe
// for concurrent use and must produce, for the same seed and shape, exactly
// the bits the CPU backend produces.
type Backend interface {
	// Info describes the device.
	Info() Info
	// MatMulInt8 computes C = A·B where A (n×k) and B (k×m) are the int8
	// matrices that Int8At defines for seed (MatrixA and MatrixB), with
	// int32 accumulation. It returns C (n×m) and the Merkle leaf hash of
	// each of C's rows (see LeafHash). It returns ctx.Err() if cancelled
	// and an error wrapping ErrShape for a bad shape.
	MatMulInt8(ctx context.Context, seed Seed, shape Shape) (*Int32Matrix, [][32]byte, error)
	// MatMulBF16 computes C = A·B for the bf16 matrices that BF16Bits
	// defines for seed (MatrixBF16A, MatrixBF16B), accumulating in float32,
	// and returns C and each row's Merkle leaf (LeafHashFloat32).
	MatMulBF16(ctx context.Context, seed Seed, shape Shape) (*Float32Matrix, [][32]byte, error)
	// VRAM runs the VRAM-capacity workload (see VRAMParams) holding all of
	// its memory on the device, and returns each lane's output and Merkle
	// leaf.
	VRAM(ctx context.Context, seed Seed, p VRAMParams) (outputs, leaves [][32]byte, err error)
}

// LeafPrefix is the domain-separation byte of a Merkle leaf (RFC 6962,
// section 2.1: leaves are hashed as H(0x00 || data), inner nodes as
// H(0x01 || left || right)).
const LeafPrefix = 0x00

// LeafHash returns SHA-256(0x00 || EncodeInt32Row(row)), the Merkle leaf of
// one result row. challenge/merkle must agree (a test checks it).
func LeafHash(row []int32) [32]byte { return leafHashBytes(EncodeInt32Row(row)) }

// leafHashInto returns LeafHash(row), encoding into buf (len ≥ 1+4·len(row))
// instead of allocating.
func leafHashInto(buf []byte, row []int32) [32]byte {
	buf = buf[:1+4*len(row)]
	buf[0] = LeafPrefix
	for i, v := range row {
		binary.LittleEndian.PutUint32(buf[1+4*i:], uint32(v))
	}
	return sha256.Sum256(buf)
}

func leafHashBytes(b []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{LeafPrefix})
	h.Write(b)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Streamer is implemented by backends that commit to products too large to
// hold: the leaves are computed chunk by chunk and C is dropped, and the
// rows to open are recomputed on demand. Shapes need only satisfy
// Shape.ValidateStreamed.
type Streamer interface {
	// LeavesInt8 returns the Merkle leaf of each row of the int8 product.
	LeavesInt8(ctx context.Context, seed Seed, shape Shape) ([][32]byte, error)
	// RowsInt8 returns the listed rows of the int8 product.
	RowsInt8(ctx context.Context, seed Seed, shape Shape, rows []int) (*Int32Matrix, error)
	// LeavesBF16 returns the Merkle leaf of each row of the bf16 product.
	LeavesBF16(ctx context.Context, seed Seed, shape Shape) ([][32]byte, error)
	// RowsBF16 returns the listed rows of the bf16 product.
	RowsBF16(ctx context.Context, seed Seed, shape Shape, rows []int) (*Float32Matrix, error)
}
