//go:build !linux || !cgo

package cuda

import (
	"context"
	"fmt"
	"time"

	"github.com/poai-network/poai/gpu"
)

// Backend is unavailable in this build (no cgo, or not Linux).
type Backend struct{}

// Open returns ErrNoDriver: this build cannot load the CUDA driver.
func Open(Options) (*Backend, error) {
	return nil, fmt.Errorf("%w: this binary was built without cgo or for a system other than Linux", ErrNoDriver)
}

// Count returns ErrNoDriver in this build.
func Count() (int, error) { return 0, ErrNoDriver }

func (*Backend) Close() error                    { return nil }
func (*Backend) Info() gpu.Info                  { return gpu.Info{Backend: "cuda"} }
func (*Backend) Device() DeviceInfo              { return DeviceInfo{} }
func (*Backend) GEMMPath(bool, gpu.Shape) string { return "cpu" }
func (*Backend) MatMulInt8(context.Context, gpu.Seed, gpu.Shape) (*gpu.Int32Matrix, [][32]byte, error) {
	return nil, nil, ErrNoDriver
}
func (*Backend) MatMulBF16(context.Context, gpu.Seed, gpu.Shape) (*gpu.Float32Matrix, [][32]byte, error) {
	return nil, nil, ErrNoDriver
}
func (*Backend) VRAM(context.Context, gpu.Seed, gpu.VRAMParams) ([][32]byte, [][32]byte, error) {
	return nil, nil, ErrNoDriver
}

// VRAMTimes splits a VRAM run's device time.
type VRAMTimes struct {
	Fill, Lanes time.Duration
}

func (*Backend) LeavesInt8(context.Context, gpu.Seed, gpu.Shape) ([][32]byte, error) {
	return nil, ErrNoDriver
}
func (*Backend) LeavesBF16(context.Context, gpu.Seed, gpu.Shape) ([][32]byte, error) {
	return nil, ErrNoDriver
}
func (*Backend) RowsInt8(context.Context, gpu.Seed, gpu.Shape, []int) (*gpu.Int32Matrix, error) {
	return nil, ErrNoDriver
}
func (*Backend) RowsBF16(context.Context, gpu.Seed, gpu.Shape, []int) (*gpu.Float32Matrix, error) {
	return nil, ErrNoDriver
}
func (*Backend) GEMMTime(bool, gpu.Shape, string, int) (time.Duration, error) { return 0, ErrNoDriver }
func (*Backend) CopyBandwidth(uint64, int) (float64, error)                   { return 0, ErrNoDriver }
func (*Backend) VRAMTimed(context.Context, gpu.Seed, gpu.VRAMParams) ([][32]byte, [][32]byte, VRAMTimes, error) {
	return nil, nil, VRAMTimes{}, ErrNoDriver
}
