package gpu

import "testing"

func TestCatalog(t *testing.T) {
	want := []string{"H200 SXM", "H100 SXM", "H100 PCIe", "A100 80GB SXM", "A100 40GB SXM", "L40S", "RTX 4090", "RTX 3090", "A10", "T4", "V100 SXM2 32GB"}
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
