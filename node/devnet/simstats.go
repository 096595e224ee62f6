package devnet

import (
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/poai-network/poai/scoring"
)

// Quantiles are a distribution's p50, p90 and p99 in milliseconds, and
// how many observations it had.
type Quantiles struct {
	Count float64 `json:"count"`
	P50MS float64 `json:"p50_ms"`
	P90MS float64 `json:"p90_ms"`
	P99MS float64 `json:"p99_ms"`
}

// histogram merges Prometheus histograms with the same buckets.
type histogram struct {
	upper []float64 // bucket upper bounds in seconds
	cum   []float64 // cumulative counts
	count float64
}

func (h *histogram) add(m *dto.Histogram) {
	if m == nil {
		return
	}
	if h.upper == nil {
		for _, b := range m.GetBucket() {
			h.upper = append(h.upper, b.GetUpperBound())
		}
		h.cum = make([]float64, len(h.upper))
	}
	for i, b := range m.GetBucket() {
		if i < len(h.cum) {
			h.cum[i] += float64(b.GetCumulativeCount())
		}
	}
	h.count += float64(m.GetSampleCount())
}

// quantile interpolates linearly inside the bucket that holds the q-th
// observation, as Prometheus's histogram_quantile does; past the last
// bucket it returns that bucket's bound.
func (h *histogram) quantile(q float64) float64 {
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, c := range h.cum {
		if c >= rank && c > below {
			return (lower + (h.upper[i]-lower)*(rank-below)/(c-below)) * 1000
		}
		lower, below = h.upper[i], c
	}
	return lower * 1000
}

func (h *histogram) quantiles() Quantiles {
	if h.count == 0 {
		return Quantiles{}
	}
	return Quantiles{Count: h.count, P50MS: h.quantile(0.5), P90MS: h.quantile(0.9), P99MS: h.quantile(0.99)}
}

// percentileMS returns the q-quantile (0..1) of ds in milliseconds, by
// nearest rank (scoring.Percentile), or 0 if ds is empty.
func percentileMS(ds []time.Duration, q float64) float64 {
	ms := make([]float64, len(ds))
	for i, d := range ds {
		ms[i] = float64(d) / 1e6
	}
	return scoring.Percentile(ms, 100*q)
}

// memoryDir returns /dev/shm when it is a folder with at least need bytes
// free, else "". Compact stores are sparse files (after an epoch, 11 MiB
// each in name and 24 KiB in use), written for nothing and removed at the
// end; on a disk the removal alone (seven files and two folders per
// store) took about 8 ms per store here, 8 s of a 1,000-peer run; 500 of
// them went from /dev/shm in 35 ms.
func memoryDir(need uint64) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Bavail*uint64(st.Bsize) < need {
		return ""
	}
	return "/dev/shm"
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is the process's peak resident set in bytes (Linux reports KiB).
func peakRSS() uint64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return uint64(ru.Maxrss) * 1024
}
