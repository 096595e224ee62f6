package gpu

import "strings"

// DeviceSpec is a device model's spec-sheet figures. Throughputs are dense
// (without 2:4 structured sparsity), in 10^12 operations per second with a
// multiply-accumulate counted as 2; 0 means the device has no such unit.
type DeviceSpec struct {
	// Model is the catalog name; Aliases are names NVML reports for it.
	Model   string
	Aliases []string
	// VRAMBytes is the memory capacity in bytes (GB = 10^9 as sold).
	VRAMBytes uint64
	// BandwidthGBps is the peak memory bandwidth in GB/s.
	BandwidthGBps float64
	// BF16TFLOPS, FP16TFLOPS and FP8TFLOPS are tensor-core peaks with fp32
	// accumulation; INT8TOPS with int32 accumulation.
	BF16TFLOPS, FP16TFLOPS, FP8TFLOPS, INT8TOPS float64
	// Source names the document the figures come from.
	Source string
}

// Catalog lists the devices poai knows, with figures from NVIDIA's spec
// sheets. Sheets quote sparse tensor throughput as the headline ("with
// sparsity"); the dense figure used here is half of it.
var Catalog = []DeviceSpec{
	{Model: "H200 SXM", Aliases: []string{"NVIDIA H200", "NVIDIA H200 SXM", "NVIDIA H200 141GB HBM3e"},
		VRAMBytes: 141e9, BandwidthGBps: 4800, BF16TFLOPS: 989.5, FP16TFLOPS: 989.5, FP8TFLOPS: 1979, INT8TOPS: 1979,
		Source: "NVIDIA H200 Tensor Core GPU datasheet (2024), SXM column; sparse figures halved"},
	{Model: "H100 SXM", Aliases: []string{"NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"},
		VRAMBytes: 80e9, BandwidthGBps: 3350, BF16TFLOPS: 989.5, FP16TFLOPS: 989.5, FP8TFLOPS: 1979, INT8TOPS: 1979,
		Source: "NVIDIA H100 Tensor Core GPU datasheet (2023), H100 SXM column; sparse figures halved"},
	{Model: "H100 PCIe", Aliases: []string{"NVIDIA H100 PCIe"},
		VRAMBytes: 80e9, BandwidthGBps: 2000, BF16TFLOPS: 756.5, FP16TFLOPS: 756.5, FP8TFLOPS: 1513, INT8TOPS: 1513,
		Source: "NVIDIA H100 Tensor Core GPU datasheet (2023), H100 PCIe column; sparse figures halved"},
	{Model: "A100 80GB SXM", Aliases: []string{"NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"},
		VRAMBytes: 80e9, BandwidthGBps: 2039, BF16TFLOPS: 312, FP16TFLOPS: 312, INT8TOPS: 624,
		Source: "NVIDIA A100 Tensor Core GPU datasheet (2021), A100 80GB SXM column"},
	{Model: "A100 40GB SXM", Aliases: []string{"NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"},
		VRAMBytes: 40e9, BandwidthGBps: 1555, BF16TFLOPS: 312, FP16TFLOPS: 312, INT8TOPS: 624,
		Source: "NVIDIA A100 Tensor Core GPU datasheet (2021), A100 40GB column"},
	{Model: "L40S", Aliases: []string{"NVIDIA L40S"},
		VRAMBytes: 48e9, BandwidthGBps: 864, BF16TFLOPS: 362.05, FP16TFLOPS: 362.05, FP8TFLOPS: 733, INT8TOPS: 733,
		Source: "NVIDIA L40S GPU datasheet (2023); sparse figures halved"},
	{Model: "RTX 4090", Aliases: []string{"NVIDIA GeForce RTX 4090"},
		VRAMBytes: 24e9, BandwidthGBps: 1008, BF16TFLOPS: 165.2, FP16TFLOPS: 165.2, FP8TFLOPS: 330.3, INT8TOPS: 660.6,
		Source: "NVIDIA Ada Lovelace GPU Architecture whitepaper v1.0 (2022), appendix table 2, dense tensor figures with FP32 accumulate"},
	{Model: "RTX 3090", Aliases: []string{"NVIDIA GeForce RTX 3090"},
		VRAMBytes: 24e9, BandwidthGBps: 936, BF16TFLOPS: 71, FP16TFLOPS: 71, INT8TOPS: 284,
		Source: "NVIDIA Ampere GA102 GPU Architecture whitepaper v2.0 (2021), appendix table 9, dense tensor figures with FP32 accumulate"},
	{Model: "A10", Aliases: []string{"NVIDIA A10"},
		VRAMBytes: 24e9, BandwidthGBps: 600, BF16TFLOPS: 125, FP16TFLOPS: 125, INT8TOPS: 250,
		Source: "NVIDIA A10 Tensor Core GPU datasheet (2021); sparse figures halved"},
	{Model: "T4", Aliases: []string{"Tesla T4", "NVIDIA T4"},
		VRAMBytes: 16e9, BandwidthGBps: 320, FP16TFLOPS: 65, INT8TOPS: 130,
		Source: "NVIDIA T4 Tensor Core GPU datasheet (2019): mixed-precision FP16/FP32 65 TFLOPS, INT8 130 TOPS; no bf16 unit"},
	{Model: "V100 SXM2 32GB", Aliases: []string{"Tesla V100-SXM2-32GB", "Tesla V100-SXM2-16GB"},
		VRAMBytes: 32e9, BandwidthGBps: 900, FP16TFLOPS: 125, INT8TOPS: 62.8,
		Source: "NVIDIA V100 Tensor Core GPU datasheet (2020), SXM2 column: tensor (FP16) 125 TFLOPS; no bf16 or int8 tensor unit, INT8 is 4 × the 15.7 TFLOPS FP32 rate through DP4A (derived)"},
}

// LookupDevice returns the catalog entry whose model or alias equals name,
// ignoring case and surrounding space.
func LookupDevice(name string) (DeviceSpec, bool) {
	name = strings.TrimSpace(name)
	for _, d := range Catalog {
		if strings.EqualFold(d.Model, name) {
			return d, true
		}
		for _, a := range d.Aliases {
			if strings.EqualFold(a, name) {
				return d, true
			}
		}
	}
	return DeviceSpec{}, false
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
