package nvml

import (
	"errors"
	"testing"
)

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
		if r.Name == "" || r.UUID == "" || r.MemoryTotalBytes == 0 || r.DriverVersion == "" {
			t.Fatalf("device %d: implausible report %v", i, r)
		}
		t.Logf("device %d: %v", i, r)
	}
}

// TestMatch ties a report to the CUDA device by PCI location, whatever the
// order NVML lists devices in.
func TestMatch(t *testing.T) {
	reports := []Report{
		{Name: "a", PCIDomain: 0, PCIBus: 0x1b, PCIDevice: 0},
		{Name: "b", PCIDomain: 0, PCIBus: 0x3b, PCIDevice: 0},
	}
	if i := Match(reports, 0, 0x3b, 0); i != 1 {
		t.Fatalf("bus 0x3b matched report %d, want 1", i)
	}
	if i := Match(reports, 1, 0x3b, 0); i != -1 {
		t.Fatalf("another domain matched report %d", i)
	}
}
