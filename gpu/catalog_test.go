package gpu

import (
	"errors"
	"strings"
	"testing"
)

func TestCatalog(t *testing.T) {
	want := []string{"H200 SXM", "H100 SXM", "H100 PCIe", "A100 80GB SXM", "A100 40GB SXM", "L40S", "RTX 4090", "RTX 3090", "A10", "T4", "V100 SXM2 32GB", "V100 SXM2 16GB"}
	for _, m := range want {
		d, ok := LookupDevice(m)
		if !ok {
			t.Fatalf("%s missing", m)
		}
		if d.VRAMBytes == 0 || d.BandwidthGBps == 0 || d.INT8TOPS == 0 || d.FastestAcceptableBF16() == 0 || d.Source == "" {
			t.Errorf("%s incomplete: %+v", m, d)
		}
	}
	if d, ok := LookupDevice("  nvidia h200 "); !ok || d.Model != "H200 SXM" {
		t.Fatal("NVML alias lookup failed")
	}
	h200, _ := LookupDevice("H200 SXM")
	if h200.FastestAcceptableBF16() != 989.5 {
		t.Fatalf("H200 bf16 rate %v: splitting into int8/fp8 must not beat bf16 on Hopper", h200.FastestAcceptableBF16())
	}
	t4, _ := LookupDevice("T4")
	if t4.FastestAcceptableBF16() != 65 {
		t.Fatalf("T4 answers bf16 challenges with fp16 units at 65 TFLOPS, got %v", t4.FastestAcceptableBF16())
	}
}

// TestLookupNormalizes: look-alike spellings of a catalog name (case,
// spaces, dashes, vendor prefix, full-width Unicode) find the one entry;
// names that look like a catalog model without naming one entry, or that
// hide non-ASCII letters, are ambiguous; other names are simply not in the
// catalog.
func TestLookupNormalizes(t *testing.T) {
	for _, name := range []string{
		"NVIDIA H100 80GB HBM3", "nvidia h100 80gb hbm3", "NVIDIA  H100 80GB HBM3", " NVIDIA H100 80GB HBM3\t",
		"nvidia-h100-80gb-hbm3", "NVIDIA_H100_80GB_HBM3", "H100 80GB HBM3", "ＮＶＩＤＩＡ Ｈ１００ ８０ＧＢ ＨＢＭ３",
		"NVIDIA\u00a0H100\u300080GB HBM3", "NVIDIA H100 80GB HBM3\u200b", "h100 sxm", "H100-SXM",
	} {
		d, ok, err := ResolveModel(name)
		if err != nil || !ok || d.Model != "H100 SXM" {
			t.Errorf("%q: got %q, %v, %v; want H100 SXM", name, d.Model, ok, err)
		}
		if d, ok := LookupDevice(name); !ok || d.Model != "H100 SXM" {
			t.Errorf("LookupDevice(%q) = %q, %v", name, d.Model, ok)
		}
	}
	for _, name := range []string{
		"H100", "NVIDIA H100", "nvidia h100 80gb", "A100", "NVIDIA A100", "RTX 4090 Ti", "H200 NVL",
		"NVIDIA \u041d100 80GB HBM3", // Cyrillic En for H
	} {
		if d, ok, err := ResolveModel(name); !errors.Is(err, ErrAmbiguousModel) || ok {
			t.Errorf("%q: got %q, %v, %v; want ErrAmbiguousModel", name, d.Model, ok, err)
		}
		if _, ok := LookupDevice(name); ok {
			t.Errorf("LookupDevice(%q) found a look-alike", name)
		}
	}
	for _, name := range []string{"amd64 CPU", "devnet CPU", "devnet GPU", "cpu", "some accelerator", "NVIDIA A10G", "NVIDIA GH200 480GB"} {
		if d, ok, err := ResolveModel(name); ok || err != nil {
			t.Errorf("%q: got %q, %v, %v; want not in the catalog, no error", name, d.Model, ok, err)
		}
	}
}

// TestCatalogHashRates: every entry has a hash rate, the H200's is the
// measured one, and the rest follow HashRateFor from SMs × boost clock.
func TestCatalogHashRates(t *testing.T) {
	for _, d := range Catalog {
		want := HashRateFor(d.SMs, d.BoostMHz)
		if d.Model == "H200 SXM" {
			want = H200HashGHps
		}
		if d.HashGHps <= 0 || d.HashGHps != want {
			t.Errorf("%s: hash rate %v, want %v", d.Model, d.HashGHps, want)
		}
		if d.MaxSMClockMHz < uint32(d.BoostMHz) || d.MaxPowerW == 0 || d.PCIeGen == 0 || d.MinDriver == 0 {
			t.Errorf("%s: NVML bounds incomplete: %+v", d.Model, d)
		}
		if strings.HasPrefix(d.Aliases[0], "NVIDIA GeForce") && d.MaxSMClockMHz != uint32(float64(d.BoostMHz)*GeForceClockHeadroom) {
			t.Errorf("%s: GeForce clock bound %d, want %v × %d", d.Model, d.MaxSMClockMHz, GeForceClockHeadroom, d.BoostMHz)
		}
		t.Logf("%-16s %3d SMs × %4d MHz: %5.2f GH/s", d.Model, d.SMs, d.BoostMHz, d.HashGHps)
	}
	if h := HashRateFor(132, 1980); h != H200HashGHps {
		t.Fatalf("the rule does not give back the H200's own figure: %v", h)
	}
}
