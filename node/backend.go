package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/cuda"
)

// OpenBackend opens the proving backend the [device] section names:
// "cuda" opens GPU d.GPU or fails; "auto" (or empty) does the same but
// falls back to the CPU backend, saying why, when there is no usable GPU;
// "cpu" uses every core. A GPU backend implements io.Closer.
func OpenBackend(d DeviceConfig, log *slog.Logger) (gpu.Backend, error) {
	if d.Backend == "cpu" {
		return gpu.NewCPU(), nil
	}
	b, err := cuda.Open(cuda.Options{Ordinal: d.GPU, CublasLt: d.CublasLt})
	if err == nil {
		info := b.Device()
		log.Info("proving on CUDA", "gpu", d.GPU, "device", info.Name, "memory_bytes", info.TotalBytes,
			"compute_capability", fmt.Sprintf("%d.%d", info.ComputeMajor, info.ComputeMinor),
			"cublaslt", info.CublasLt, "cublaslt_error", info.CublasLtError)
		return b, nil
	}
	if d.Backend == "cuda" {
		return nil, fmt.Errorf("[device] backend = \"cuda\": %w", err)
	}
	level := slog.LevelWarn
	if errors.Is(err, cuda.ErrNoDriver) {
		level = slog.LevelInfo
	}
	log.Log(context.Background(), level, "no usable GPU, proving on the CPU", "reason", err)
	return gpu.NewCPU(), nil
}
