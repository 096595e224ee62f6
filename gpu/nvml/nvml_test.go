package nvml

import (
	"errors"
	"strings"
	"testing"

	"github.com/poai-network/poai/challenge/pb"
)

// h200 is what NVML reported on the lent H200 (shared/reference/h200.md).
func h200() *pb.DeviceReport {
	return &pb.DeviceReport{Name: "NVIDIA H200", MemoryTotalBytes: 150_754_820_096, EccEnabled: true, PcieGen: 5, PcieWidth: 16}
}

func TestCrossCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		claim *pb.DeviceClaim
		want  []string // substrings, one per finding
	}{
		{"consistent H200", &pb.DeviceClaim{Model: "NVIDIA H200", Count: 1, Devices: []*pb.DeviceReport{h200()}}, nil},
		{"catalog model name", &pb.DeviceClaim{Model: "H200 SXM", Count: 1, Devices: []*pb.DeviceReport{h200()}}, nil},
		{"no report", &pb.DeviceClaim{Model: "NVIDIA H200", Count: 1}, nil},
		{"claims an H100, reports an H200", &pb.DeviceClaim{Model: "NVIDIA H100 80GB HBM3", Count: 1, Devices: []*pb.DeviceReport{h200()}},
			[]string{"reports \"NVIDIA H200\"", "bytes of memory"}},
		{"memory far from the catalog", &pb.DeviceClaim{Model: "NVIDIA H200", Count: 1,
			Devices: []*pb.DeviceReport{{Name: "NVIDIA H200", MemoryTotalBytes: 80e9}}}, []string{"bytes of memory"}},
		{"count mismatch and ECC errors", &pb.DeviceClaim{Model: "NVIDIA H200", Count: 2,
			Devices: []*pb.DeviceReport{{Name: "NVIDIA H200", MemoryTotalBytes: 150e9, EccUncorrected: 3}}},
			[]string{"claims 2 devices", "uncorrected ECC"}},
	} {
		got := CrossCheck(tc.claim)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: findings %q, want %d", tc.name, got, len(tc.want))
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) {
				t.Fatalf("%s: finding %q lacks %q", tc.name, got[i], w)
			}
		}
	}
}

// TestReports runs NVML where it is installed and checks the reports are
// plausible; elsewhere it checks the error says NVML is unavailable.
func TestReports(t *testing.T) {
	reports, err := Reports()
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Reports: %v, want an error wrapping ErrUnavailable", err)
		}
		t.Skipf("no NVML here: %v", err)
	}
	for i, r := range reports {
		if r.GetName() == "" || r.GetUuid() == "" || r.GetMemoryTotalBytes() == 0 || r.GetDriverVersion() == "" {
			t.Fatalf("device %d: implausible report %v", i, r)
		}
		t.Logf("device %d: %v", i, r)
	}
}

// TestMatch ties a report to the CUDA device by PCI location, whatever the
// order NVML lists devices in.
func TestMatch(t *testing.T) {
	reports := []*pb.DeviceReport{
		{Name: "a", PciDomain: 0, PciBus: 0x1b, PciDevice: 0},
		{Name: "b", PciDomain: 0, PciBus: 0x3b, PciDevice: 0},
	}
	if i := Match(reports, 0, 0x3b, 0); i != 1 {
		t.Fatalf("bus 0x3b matched report %d, want 1", i)
	}
	if i := Match(reports, 1, 0x3b, 0); i != -1 {
		t.Fatalf("another domain matched report %d", i)
	}
}
