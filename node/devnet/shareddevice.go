package devnet

import (
	"context"
	"sync"

	"github.com/poai-network/poai/gpu"
)

// sharedDevice is one device serving two peers (a relay and its
// accomplice): workloads run one at a time. ADVERSARY wiring, devnet only.
type sharedDevice struct {
	mu sync.Mutex
	gpu.Backend
}

func (s *sharedDevice) streamer() gpu.Streamer { return s.Backend.(gpu.Streamer) }

func (s *sharedDevice) MatMulInt8(ctx context.Context, seed gpu.Seed, sh gpu.Shape) (*gpu.Int32Matrix, [][32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Backend.MatMulInt8(ctx, seed, sh)
}

func (s *sharedDevice) MatMulBF16(ctx context.Context, seed gpu.Seed, sh gpu.Shape) (*gpu.Float32Matrix, [][32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Backend.MatMulBF16(ctx, seed, sh)
}

func (s *sharedDevice) VRAM(ctx context.Context, seed gpu.Seed, p gpu.VRAMParams) ([][32]byte, [][32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Backend.VRAM(ctx, seed, p)
}

func (s *sharedDevice) LeavesInt8(ctx context.Context, seed gpu.Seed, sh gpu.Shape) ([][32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamer().LeavesInt8(ctx, seed, sh)
}

func (s *sharedDevice) RowsInt8(ctx context.Context, seed gpu.Seed, sh gpu.Shape, rows []int) (*gpu.Int32Matrix, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamer().RowsInt8(ctx, seed, sh, rows)
}

func (s *sharedDevice) LeavesBF16(ctx context.Context, seed gpu.Seed, sh gpu.Shape) ([][32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamer().LeavesBF16(ctx, seed, sh)
}

func (s *sharedDevice) RowsBF16(ctx context.Context, seed gpu.Seed, sh gpu.Shape, rows []int) (*gpu.Float32Matrix, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamer().RowsBF16(ctx, seed, sh, rows)
}
