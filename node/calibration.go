package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/internal/atomicfile"
)

// CalibrationFile is the data directory's record of the last measurement
// of the device (calibrate): what a node claims when its config leaves a
// figure at 0.
const CalibrationFile = "calibration.json"

// calibrationVersion changes when the measurement does, so that a record
// made by another way of measuring is not reused.
const calibrationVersion = 2

// Calibration is a measurement of the device a node proves on, kept in
// CalibrationFile so that every start claims the same figures (two
// measurements of one CPU a start apart differed by 1.9×) until the
// operator asks for a new one (`poai run --recalibrate`).
type Calibration struct {
	Version int `json:"version"`
	// Device names what was measured (deviceIdentity): the backend, its
	// model, count and memory, the host's CPUs, and the shapes measured.
	// A record of another device is not used.
	Device     string         `json:"device"`
	Measured   gpu.Throughput `json:"measured"`
	MeasuredAt time.Time      `json:"measured_at"`
}

// deviceIdentity names the device backend measures as, with the shapes of
// ch it is measured on.
func deviceIdentity(backend gpu.Backend, ch ChallengeConfig) string {
	info := backend.Info()
	return fmt.Sprintf("backend=%s model=%q devices=%d memory=%d host=%s/%s cpus=%d gomaxprocs=%d cpu=%q int8=%dx%d bf16=%dx%d",
		info.Backend, info.Model, info.Devices, info.MemoryBytes, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0),
		cpuModel(), ch.K, ch.M, ch.BF16K, ch.BF16M)
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// calibrate returns the measured throughput of backend: the record in
// path when it is of this device and recalibrate is false, else a new
// measurement (gpu.MeasureAllFor on ch's shapes, challenge.MeasureLLM),
// written to path. A re-measurement over an existing record logs both.
// An unreadable or damaged record is measured over, with a warning.
func calibrate(ctx context.Context, path string, backend gpu.Backend, ch ChallengeConfig, recalibrate bool, log *slog.Logger) (gpu.Throughput, error) {
	id := deviceIdentity(backend, ch)
	var old *Calibration
	switch b, err := os.ReadFile(path); {
	case err == nil:
		var c Calibration
		if err := json.Unmarshal(b, &c); err != nil {
			log.Warn("calibration record unreadable; measuring again", "file", path, "err", err)
			break
		}
		old = &c
	case !errors.Is(err, fs.ErrNotExist):
		log.Warn("calibration record unreadable; measuring again", "file", path, "err", err)
	}
	if old != nil && old.Version == calibrationVersion && old.Device == id && !recalibrate {
		log.Info("device calibration from record", "file", path, "measured_at", old.MeasuredAt.Format(time.RFC3339),
			"int8_tops", old.Measured.Int8TOPS, "bf16_tflops", old.Measured.BF16TFLOPS, "hash_ghps", old.Measured.HashGHps, "llm_int8_tops", old.Measured.LLMInt8TOPS)
		return old.Measured, nil
	}
	t, err := gpu.MeasureAllFor(ctx, backend, gpu.MeasureShapes{Int8K: ch.K, Int8M: ch.M, BF16K: ch.BF16K, BF16M: ch.BF16M})
	if err != nil {
		return t, fmt.Errorf("measure backend: %w", err)
	}
	if t.LLMInt8TOPS, err = challenge.MeasureLLM(ctx, backend, 2); err != nil {
		return t, fmt.Errorf("measure backend: llm: %w", err)
	}
	attrs := []any{"backend", backend.Info().Backend, "int8_tops", t.Int8TOPS, "bf16_tflops", t.BF16TFLOPS, "hash_ghps", t.HashGHps, "llm_int8_tops", t.LLMInt8TOPS}
	if old != nil && old.Device == id {
		attrs = append(attrs, "previous_measured_at", old.MeasuredAt.Format(time.RFC3339), "previous_int8_tops", old.Measured.Int8TOPS,
			"previous_bf16_tflops", old.Measured.BF16TFLOPS, "previous_hash_ghps", old.Measured.HashGHps, "previous_llm_int8_tops", old.Measured.LLMInt8TOPS)
	}
	attrs = append(attrs, "recorded_in", path)
	log.Info("measured backend", attrs...)
	b, err := json.MarshalIndent(Calibration{Version: calibrationVersion, Device: id, Measured: t, MeasuredAt: time.Now().UTC()}, "", "  ")
	if err != nil {
		return t, err
	}
	if err := atomicfile.Write(path, append(b, '\n')); err != nil {
		log.Warn("calibration not recorded; the next start measures again", "file", path, "err", err)
	}
	return t, nil
}
