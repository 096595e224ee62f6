package gpu

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// DeviceSpec is a device model's spec-sheet figures. Throughputs are dense
// (without 2:4 structured sparsity), in 10^12 operations per second with a
// multiply-accumulate counted as 2; 0 means the device has no such unit.
type DeviceSpec struct {
	// Model is the catalog name; Aliases are names NVML reports for it.
	// Names are compared after NormalizeModel.
	Model   string
	Aliases []string
	// VRAMBytes is the memory capacity in bytes (GB = 10^9 as sold).
	VRAMBytes uint64
	// BandwidthGBps is the peak memory bandwidth in GB/s.
	BandwidthGBps float64
	// BF16TFLOPS, FP16TFLOPS and FP8TFLOPS are tensor-core peaks with fp32
	// accumulation; INT8TOPS with int32 accumulation.
	BF16TFLOPS, FP16TFLOPS, FP8TFLOPS, INT8TOPS float64
	// SMs is the streaming multiprocessor count and BoostMHz the rated
	// maximum boost clock, from the same sources; they size HashGHps.
	SMs, BoostMHz int
	// HashGHps is the VRAM workload's SHA-256 rate, 10^9 compressions per
	// second, that the VRAM proof's deadline is computed from: measured on
	// the H200, derived for every other model (HashRateFor).
	HashGHps float64
	// MaxSMClockMHz bounds the SM clock NVML may report for the model
	// (challenge.CrossCheck): the rated boost for data-centre boards, whose
	// NVML maximum equals it (1,980 MHz measured on the H200), and
	// GeForceClockHeadroom over it for GeForce boards, whose clock tables
	// run above the rated boost.
	MaxSMClockMHz uint32
	// MaxPowerW bounds the power limit NVML may report, in watts: the
	// highest board power of the boards the entry covers (for GeForce
	// boards, the power connectors' limit).
	MaxPowerW uint32
	// PCIeGen is the highest PCIe generation the device links at.
	PCIeGen uint32
	// MinDriver is the lowest driver branch (major version) that runs the
	// model: the minimum driver of the first CUDA toolkit that supports its
	// compute capability (CUDA Toolkit release notes, table 3: CUDA 9.0
	// ≥ 384.81 for sm_70, 10.0 ≥ 410.48 for sm_75, 11.0 ≥ 450.36 for
	// sm_80, 11.1 ≥ 455.23 for sm_86, 11.8 ≥ 520.61 for sm_89 and sm_90).
	MinDriver int
	// Source names the document the figures come from.
	Source string
}

// H200HashGHps is the VRAM workload's rate measured on an H200 SXM with
// the CUDA backend (docs/measurements/gpu-check-2026-11-30.log: fill of
// 125.3 GiB in 20.1 s, then 1,048,576 lanes of 4,011 reads in 0.75 s,
// 13.3·10^9 compressions/s).
const H200HashGHps = 13.3

// h200HashSMMHz is the H200's SMs × boost clock (132 × 1,980 MHz), the
// reference HashRateFor scales from.
const h200HashSMMHz = 132 * 1980

// HashRateFor returns the VRAM workload's hash rate (10^9 SHA-256
// compressions per second) derived for a device with sms multiprocessors
// at a boost clock of boostMHz: H200HashGHps × (sms × boostMHz) / (132 ×
// 1,980). A SHA-256 compression is 32-bit integer adds, shifts and logic,
// which every architecture in the catalog (compute capability 7.0 to 9.0)
// issues at 64 per SM per clock (CUDA C++ Programming Guide, throughput
// of native arithmetic instructions), and the workload is bound by them,
// not by memory (0.003 of the copy bandwidth on the H200). The figure is
// derived, not measured: a model whose kernels run faster than the rule
// gives has that much more room to recompute blocks (docs/soundness.md).
func HashRateFor(sms, boostMHz int) float64 {
	return math.Round(H200HashGHps*float64(sms*boostMHz)/h200HashSMMHz*100) / 100
}

// GeForceClockHeadroom is how far above its rated boost a GeForce board's
// NVML maximum SM clock may be: their clock tables (and factory
// overclocks) run above the rated boost, an RTX 4090 rated 2,520 MHz at
// 2.9–3.0 GHz under load.
const GeForceClockHeadroom = 1.25

// Catalog lists the devices poai knows, with figures from NVIDIA's spec
// sheets. Sheets quote sparse tensor throughput as the headline ("with
// sparsity"); the dense figure used here is half of it. SM counts and
// boost clocks come from the architecture whitepapers (Volta, Turing,
// Ampere GA100 and GA102, Ada, Hopper) and product briefs; the H200's
// clock is what NVML reported on the lent machine.
var Catalog = []DeviceSpec{
	{Model: "H200 SXM", Aliases: []string{"NVIDIA H200", "NVIDIA H200 SXM", "NVIDIA H200 141GB HBM3e"},
		VRAMBytes: 141e9, BandwidthGBps: 4800, BF16TFLOPS: 989.5, FP16TFLOPS: 989.5, FP8TFLOPS: 1979, INT8TOPS: 1979,
		SMs: 132, BoostMHz: 1980, HashGHps: H200HashGHps, MaxSMClockMHz: 1980, MaxPowerW: 700, PCIeGen: 5, MinDriver: 520,
		Source: "NVIDIA H200 Tensor Core GPU datasheet (2024), SXM column; sparse figures halved; 132 SMs (GH100 as in H100 SXM5); clock and hash rate measured (docs/measurements)"},
	{Model: "H100 SXM", Aliases: []string{"NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"},
		VRAMBytes: 80e9, BandwidthGBps: 3350, BF16TFLOPS: 989.5, FP16TFLOPS: 989.5, FP8TFLOPS: 1979, INT8TOPS: 1979,
		SMs: 132, BoostMHz: 1980, HashGHps: HashRateFor(132, 1980), MaxSMClockMHz: 1980, MaxPowerW: 700, PCIeGen: 5, MinDriver: 520,
		Source: "NVIDIA H100 Tensor Core GPU datasheet (2023), H100 SXM column; sparse figures halved; 132 SMs (Hopper whitepaper, table 3), 1,980 MHz as the H200"},
	{Model: "H100 PCIe", Aliases: []string{"NVIDIA H100 PCIe"},
		VRAMBytes: 80e9, BandwidthGBps: 2000, BF16TFLOPS: 756.5, FP16TFLOPS: 756.5, FP8TFLOPS: 1513, INT8TOPS: 1513,
		SMs: 114, BoostMHz: 1755, HashGHps: HashRateFor(114, 1755), MaxSMClockMHz: 1755, MaxPowerW: 350, PCIeGen: 5, MinDriver: 520,
		Source: "NVIDIA H100 Tensor Core GPU datasheet (2023), H100 PCIe column; sparse figures halved; 114 SMs (Hopper whitepaper, table 3); 1,755 MHz boost (H100 PCIe product brief)"},
	{Model: "A100 80GB SXM", Aliases: []string{"NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"},
		VRAMBytes: 80e9, BandwidthGBps: 2039, BF16TFLOPS: 312, FP16TFLOPS: 312, INT8TOPS: 624,
		SMs: 108, BoostMHz: 1410, HashGHps: HashRateFor(108, 1410), MaxSMClockMHz: 1410, MaxPowerW: 400, PCIeGen: 4, MinDriver: 450,
		Source: "NVIDIA A100 Tensor Core GPU datasheet (2021), A100 80GB SXM column; 108 SMs at 1,410 MHz (Ampere GA100 whitepaper, table 1)"},
	{Model: "A100 40GB SXM", Aliases: []string{"NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"},
		VRAMBytes: 40e9, BandwidthGBps: 1555, BF16TFLOPS: 312, FP16TFLOPS: 312, INT8TOPS: 624,
		SMs: 108, BoostMHz: 1410, HashGHps: HashRateFor(108, 1410), MaxSMClockMHz: 1410, MaxPowerW: 400, PCIeGen: 4, MinDriver: 450,
		Source: "NVIDIA A100 Tensor Core GPU datasheet (2021), A100 40GB column; 108 SMs at 1,410 MHz (Ampere GA100 whitepaper, table 1)"},
	{Model: "L40S", Aliases: []string{"NVIDIA L40S"},
		VRAMBytes: 48e9, BandwidthGBps: 864, BF16TFLOPS: 362.05, FP16TFLOPS: 362.05, FP8TFLOPS: 733, INT8TOPS: 733,
		SMs: 142, BoostMHz: 2520, HashGHps: HashRateFor(142, 2520), MaxSMClockMHz: 2520, MaxPowerW: 350, PCIeGen: 4, MinDriver: 520,
		Source: "NVIDIA L40S GPU datasheet (2023); sparse figures halved; 18,176 CUDA cores = 142 SMs, 2,520 MHz boost (L40S product brief)"},
	{Model: "RTX 4090", Aliases: []string{"NVIDIA GeForce RTX 4090"},
		VRAMBytes: 24e9, BandwidthGBps: 1008, BF16TFLOPS: 165.2, FP16TFLOPS: 165.2, FP8TFLOPS: 330.3, INT8TOPS: 660.6,
		SMs: 128, BoostMHz: 2520, HashGHps: HashRateFor(128, 2520), MaxSMClockMHz: 3150, MaxPowerW: 675, PCIeGen: 4, MinDriver: 520,
		Source: "NVIDIA Ada Lovelace GPU Architecture whitepaper v1.0 (2022), appendix table 2, dense tensor figures with FP32 accumulate; 128 SMs at 2,520 MHz; power: 16-pin connector (600 W) and slot (75 W)"},
	{Model: "RTX 3090", Aliases: []string{"NVIDIA GeForce RTX 3090"},
		VRAMBytes: 24e9, BandwidthGBps: 936, BF16TFLOPS: 71, FP16TFLOPS: 71, INT8TOPS: 284,
		SMs: 82, BoostMHz: 1695, HashGHps: HashRateFor(82, 1695), MaxSMClockMHz: 2118, MaxPowerW: 525, PCIeGen: 4, MinDriver: 455,
		Source: "NVIDIA Ampere GA102 GPU Architecture whitepaper v2.0 (2021), appendix table 9, dense tensor figures with FP32 accumulate; 82 SMs at 1,695 MHz; power: three 8-pin connectors (450 W) and slot (75 W)"},
	{Model: "A10", Aliases: []string{"NVIDIA A10"},
		VRAMBytes: 24e9, BandwidthGBps: 600, BF16TFLOPS: 125, FP16TFLOPS: 125, INT8TOPS: 250,
		SMs: 72, BoostMHz: 1695, HashGHps: HashRateFor(72, 1695), MaxSMClockMHz: 1695, MaxPowerW: 150, PCIeGen: 4, MinDriver: 455,
		Source: "NVIDIA A10 Tensor Core GPU datasheet (2021); sparse figures halved; 9,216 CUDA cores = 72 SMs, 1,695 MHz boost (A10 product brief)"},
	{Model: "T4", Aliases: []string{"Tesla T4", "NVIDIA T4"},
		VRAMBytes: 16e9, BandwidthGBps: 320, FP16TFLOPS: 65, INT8TOPS: 130,
		SMs: 40, BoostMHz: 1590, HashGHps: HashRateFor(40, 1590), MaxSMClockMHz: 1590, MaxPowerW: 70, PCIeGen: 3, MinDriver: 410,
		Source: "NVIDIA T4 Tensor Core GPU datasheet (2019): mixed-precision FP16/FP32 65 TFLOPS, INT8 130 TOPS; no bf16 unit; 40 SMs at 1,590 MHz (Turing whitepaper, table 3)"},
	{Model: "V100 SXM2 32GB", Aliases: []string{"Tesla V100-SXM2-32GB"},
		VRAMBytes: 32e9, BandwidthGBps: 900, FP16TFLOPS: 125, INT8TOPS: 62.8,
		SMs: 80, BoostMHz: 1530, HashGHps: HashRateFor(80, 1530), MaxSMClockMHz: 1530, MaxPowerW: 300, PCIeGen: 3, MinDriver: 384,
		Source: "NVIDIA V100 Tensor Core GPU datasheet (2020), SXM2 column: tensor (FP16) 125 TFLOPS; no bf16 or int8 tensor unit, INT8 is 4 × the 15.7 TFLOPS FP32 rate through DP4A (derived); 80 SMs at 1,530 MHz (Volta whitepaper, table 1)"},
	{Model: "V100 SXM2 16GB", Aliases: []string{"Tesla V100-SXM2-16GB"},
		VRAMBytes: 16e9, BandwidthGBps: 900, FP16TFLOPS: 125, INT8TOPS: 62.8,
		SMs: 80, BoostMHz: 1530, HashGHps: HashRateFor(80, 1530), MaxSMClockMHz: 1530, MaxPowerW: 300, PCIeGen: 3, MinDriver: 384,
		Source: "as V100 SXM2 32GB, with 16 GB of memory (V100 datasheet, SXM2 column)"},
}

// ErrAmbiguousModel reports a model name that looks like a catalog model
// (it names a catalog family such as "h100" or "4090") without
// normalizing to exactly one catalog entry, or one with characters
// outside ASCII after NFKC. Such a name would have its claim sized from
// its own figures while passing for a catalog device.
var ErrAmbiguousModel = errors.New("model name resembles a catalog model but names no single entry")

// vendorWords are words NormalizeModel drops from the front of a name:
// the vendor and its brands, which NVML puts before some names only.
var vendorWords = map[string]bool{"nvidia": true, "tesla": true, "geforce": true}

// NormalizeModel returns the form under which model names are compared:
// Unicode NFKC (full-width and compatibility forms become ASCII), lower
// case, every run of characters other than letters and digits one space,
// and leading vendor words ("nvidia", "tesla", "geforce") dropped. So
// "NVIDIA  H100 80GB HBM3", "nvidia-h100-80gb-hbm3" and its full-width
// form all read "h100 80gb hbm3".
func NormalizeModel(name string) string {
	name = strings.ToLower(norm.NFKC.String(name))
	words := strings.FieldsFunc(name, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for len(words) > 0 && vendorWords[words[0]] {
		words = words[1:]
	}
	return strings.Join(words, " ")
}

// family returns the first word of a normalized name that holds a digit
// ("h100", "4090", "t4"): the word that names the chip.
func family(normalized string) string {
	for _, w := range strings.Fields(normalized) {
		if strings.ContainsFunc(w, unicode.IsDigit) {
			return w
		}
	}
	return ""
}

// DeviceCatalog is a set of device models indexed for lookup by
// normalized name (NormalizeModel). DefaultCatalog holds Catalog, what
// every real node plans from; DevnetCatalog adds emulated models for
// devnets. A DeviceCatalog is immutable and safe for concurrent use.
type DeviceCatalog struct {
	specs []DeviceSpec
	// index maps every normalized model and alias to its entry's index,
	// and families holds each entry's family word.
	index    map[string]int
	families map[string]bool
}

// NewDeviceCatalog indexes specs. It returns an error when two entries
// (models or aliases) normalize to the same name.
func NewDeviceCatalog(specs []DeviceSpec) (*DeviceCatalog, error) {
	c := &DeviceCatalog{specs: slices.Clone(specs), index: map[string]int{}, families: map[string]bool{}}
	for i, d := range c.specs {
		for _, n := range append([]string{d.Model}, d.Aliases...) {
			k := NormalizeModel(n)
			if j, dup := c.index[k]; dup && j != i {
				return nil, fmt.Errorf("gpu: catalog names %q twice", n)
			}
			c.index[k] = i
			if f := family(k); f != "" {
				c.families[f] = true
			}
		}
	}
	return c, nil
}

// DefaultCatalog is Catalog, indexed: the catalog every node plans from
// unless it is given another (a devnet's DevnetCatalog).
var DefaultCatalog = func() *DeviceCatalog {
	c, err := NewDeviceCatalog(Catalog)
	if err != nil {
		panic(err) // a broken invariant of the table above
	}
	return c
}()

// Specs returns a copy of the catalog's entries.
func (c *DeviceCatalog) Specs() []DeviceSpec { return slices.Clone(c.specs) }

// Resolve returns the entry name normalizes to (NormalizeModel) and true;
// false with a nil error for a name that is not a model of c and does not
// look like one ("amd64 CPU", "devnet GPU"); and ErrAmbiguousModel for a
// look-alike: a name that is not ASCII after NFKC (a Cyrillic "Н100"), or
// names a family of c without matching an entry exactly ("NVIDIA H100",
// "A100").
func (c *DeviceCatalog) Resolve(name string) (DeviceSpec, bool, error) {
	n := NormalizeModel(name)
	if i, ok := c.index[n]; ok {
		return c.specs[i], true, nil
	}
	for _, r := range n {
		if r > unicode.MaxASCII {
			return DeviceSpec{}, false, fmt.Errorf("%w: %q is not ASCII", ErrAmbiguousModel, name)
		}
	}
	for _, w := range strings.Fields(n) {
		if c.families[w] {
			return DeviceSpec{}, false, fmt.Errorf("%w: %q names %q", ErrAmbiguousModel, name, w)
		}
	}
	return DeviceSpec{}, false, nil
}

// Lookup returns the entry whose model or alias name normalizes to
// (NormalizeModel); look-alikes (Resolve) are not found.
func (c *DeviceCatalog) Lookup(name string) (DeviceSpec, bool) {
	d, ok, _ := c.Resolve(name)
	return d, ok
}

// ResolveModel is DefaultCatalog.Resolve.
func ResolveModel(name string) (DeviceSpec, bool, error) { return DefaultCatalog.Resolve(name) }

// LookupDevice is DefaultCatalog.Lookup: the catalog entry whose model or
// alias name normalizes to (NormalizeModel); look-alikes (ResolveModel)
// are not found.
func LookupDevice(name string) (DeviceSpec, bool) { return DefaultCatalog.Lookup(name) }

// DevnetPrefix starts the name of every emulated model of DevnetCatalog:
// "devnet A100 80GB SXM" is the emulated A100 80GB SXM. In DefaultCatalog
// such a name is a look-alike (it names a catalog family), so a claim of
// an emulated model is rejected everywhere but on a devnet.
const DevnetPrefix = "devnet "

// DevnetScale shrinks catalog figures to a devnet's size.
type DevnetScale struct {
	// Compute multiplies every throughput (int8, fp8, fp16 and bf16 peaks,
	// the hash rate, the memory bandwidth), so the ratios between models
	// and between workloads are the catalog's.
	Compute float64
	// Memory multiplies the memory capacity. Compute and Memory apart
	// set how long a VRAM proof takes (its blocks over the hash rate):
	// Memory/Compute times the real model's time, the same factor for
	// every model.
	Memory float64
}

// DevnetCatalog returns Catalog plus, for each entry, an emulated model
// named DevnetPrefix + its model ("devnet H100 SXM", no aliases) whose
// figures are the entry's scaled by s; SMs, clocks, power, PCIe and
// driver bounds are kept. A devnet's nodes plan from it exactly as real
// nodes plan from DefaultCatalog, with its real entries unchanged, so that
// CPU devices emulating a catalog model (Emulated) are held to its floors.
func DevnetCatalog(s DevnetScale) *DeviceCatalog {
	specs := Catalog
	for _, d := range Catalog {
		e := d
		e.Model, e.Aliases = DevnetPrefix+d.Model, nil
		e.VRAMBytes = uint64(float64(d.VRAMBytes) * s.Memory)
		e.BandwidthGBps *= s.Compute
		e.BF16TFLOPS *= s.Compute
		e.FP16TFLOPS *= s.Compute
		e.FP8TFLOPS *= s.Compute
		e.INT8TOPS *= s.Compute
		e.HashGHps *= s.Compute
		e.Source = fmt.Sprintf("emulated: %s scaled by %.3g (throughput) and %.3g (memory)", d.Model, s.Compute, s.Memory)
		specs = append(specs[:len(specs):len(specs)], e)
	}
	c, err := NewDeviceCatalog(specs)
	if err != nil {
		panic(err) // the prefix keeps every emulated name apart
	}
	return c
}

// FastestExactInt8 returns the peak rate (TOPS) of the fastest unit that
// can compute an int8×int8→int32 product exactly: int8 units, or fp16 units
// with fp32 accumulation, which hold int8 values and their products
// exactly and stay exact while partial sums are below 2^24 (always for
// k ≤ 1024, almost always beyond for random signs). On the V100, which has
// no int8 tensor unit, fp16 (125 TFLOPS) beats DP4A int8 (62.8 TOPS). fp8
// cannot hold an int8 value (4-bit significand).
func (d DeviceSpec) FastestExactInt8() float64 { return max(d.INT8TOPS, d.FP16TFLOPS) }

// FastestAcceptableBF16 returns the peak rate (TFLOPS) of the fastest way
// to produce an answer within tolerance for a bf16 challenge: bf16 or fp16
// units directly (poai's bf16 values, |x| ∈ [0.5,2) with 8 significant
// bits, are exact in fp16 too), or a split of each input into narrower
// pieces — two int8 or two fp8 pieces each, which needs at least three
// partial products (hi·hi, hi·lo, lo·hi), so a third of the int8 or fp8
// rate.
func (d DeviceSpec) FastestAcceptableBF16() float64 {
	return max(d.BF16TFLOPS, d.FP16TFLOPS, d.INT8TOPS/3, d.FP8TFLOPS/3)
}
