package challenge

import (
	"strings"
	"testing"

	"github.com/poai-network/poai/challenge/pb"
)

// h200 is what NVML reported on the lent H200 (shared/reference/h200.md).
func h200() *pb.DeviceReport {
	return &pb.DeviceReport{Name: "NVIDIA H200", MemoryTotalBytes: 150_754_820_096, EccEnabled: true, PcieGen: 5, PcieWidth: 16,
		SmClockMaxMhz: 1980, SmClockMhz: 1980, MemClockMaxMhz: 3201, PowerLimitMw: 700_000, TemperatureC: 36, DriverVersion: "580.159.04"}
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
			[]string{"claims 2 H200 SXM devices; a node proves one", "claims 2 devices but reports 1", "uncorrected ECC"}},
		{"many devices, no report", &pb.DeviceClaim{Model: "NVIDIA H100 80GB HBM3", Count: 12}, []string{"claims 12 H100 SXM devices"}},
		{"many CPU workers", &pb.DeviceClaim{Model: "amd64 CPU", Count: 16}, nil},
		{"look-alike spelling of the reported name", &pb.DeviceClaim{Model: "nvidia-h200", Count: 1, Devices: []*pb.DeviceReport{h200()}}, nil},
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

// TestCrossCheckBounds: values no device of the claimed model (or no
// NVIDIA device at all) could report are findings; the lent H200's own
// report is not.
func TestCrossCheckBounds(t *testing.T) {
	with := func(f func(r *pb.DeviceReport)) *pb.DeviceReport { r := h200(); f(r); return r }
	for _, tc := range []struct {
		name   string
		model  string
		report *pb.DeviceReport
		want   string // substring of the one finding; "" for none
	}{
		{"the lent H200", "NVIDIA H200", h200(), ""},
		{"max SM clock above the model's", "NVIDIA H200", with(func(r *pb.DeviceReport) { r.SmClockMaxMhz = 2600 }), "SM clock of 2600 MHz, above the 1980 MHz maximum for the H200 SXM"},
		{"SM clock above its own maximum", "NVIDIA H200", with(func(r *pb.DeviceReport) { r.SmClockMaxMhz, r.SmClockMhz = 1500, 1600 }), "above its own maximum"},
		{"clock above any GPU", "devnet GPU", with(func(r *pb.DeviceReport) { r.SmClockMaxMhz, r.SmClockMhz = 9000, 1000 }), "maximum of any NVIDIA GPU"},
		{"impossible temperature", "NVIDIA H200", with(func(r *pb.DeviceReport) { r.TemperatureC = 150 }), "150 °C"},
		{"power above the board's", "NVIDIA H200", with(func(r *pb.DeviceReport) { r.PowerLimitMw = 1_500_000 }), "power limit of 1500 W"},
		{"PCIe generation the model lacks", "NVIDIA H200", with(func(r *pb.DeviceReport) { r.PcieGen = 6 }), "PCIe generation 6"},
		{"PCIe generation that does not exist", "devnet GPU", with(func(r *pb.DeviceReport) { r.PcieGen = 9 }), "PCIe generation 9"},
		{"PCIe width", "NVIDIA H200", with(func(r *pb.DeviceReport) { r.PcieWidth = 17 }), "width 17"},
		{"driver older than the model", "NVIDIA H200", with(func(r *pb.DeviceReport) { r.DriverVersion = "470.82.01" }), "older than the first driver"},
		{"driver version of no form", "NVIDIA H200", with(func(r *pb.DeviceReport) { r.DriverVersion = "99999.1-hacked" }), "not an NVIDIA driver version"},
		{"a throttled clock is no finding", "NVIDIA H200", with(func(r *pb.DeviceReport) { r.SmClockMhz, r.TemperatureC = 1100, 88 }), ""},
	} {
		claim := &pb.DeviceClaim{Model: tc.model, Count: 1, Devices: []*pb.DeviceReport{tc.report}}
		if tc.model == "devnet GPU" {
			claim.Devices[0].Name = "devnet GPU"
		}
		got := CrossCheck(claim)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: findings %q, want none", tc.name, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: findings %q, want one with %q", tc.name, got, tc.want)
		}
	}
}
