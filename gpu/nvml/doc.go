// Package nvml reads what each NVIDIA GPU says of itself through NVML
// (go-nvml, which loads libnvidia-ml.so.1 at run time): name, UUID,
// memory, clocks, power limit, temperature, ECC mode and errors, PCIe link
// and driver version. The node signs these reports into its device claim
// (as pb.DeviceReport), and challenge.CrossCheck compares them with the
// claimed model's catalog entry.
//
// A report is the device's word, not evidence: a modified driver or a
// shim over NVML can say anything. What a report gives challengers is a
// statement that is either consistent with the proofs or a signed lie —
// a claim whose proofs run far below its reported model is flagged.
package nvml

import "errors"

// ErrUnavailable reports that NVML is not installed, does not initialise,
// or that the binary was built without cgo.
var ErrUnavailable = errors.New("NVML unavailable")

// Report is what one device says of itself. Fields NVML cannot read stay
// zero.
type Report struct {
	Name, UUID       string
	MemoryTotalBytes uint64 // bytes
	// SM clock and its maximum, memory clock maximum, in MHz.
	SMClockMHz, SMClockMaxMHz, MemClockMaxMHz uint32
	PowerLimitMW                              uint32 // milliwatts
	TemperatureC                              uint32 // °C
	ECCEnabled                                bool
	ECCUncorrected                            uint64 // volatile uncorrected ECC errors
	PCIeGen, PCIeWidth                        uint32 // current link generation and width
	PCIDomain, PCIBus, PCIDevice              uint32 // PCI location
	DriverVersion                             string // e.g. "580.159.04"
}

// SlowProofFactor is the fraction of a catalog model's anticipated speed
// below which a passing proof flags its claim: an honest device of the
// model finishes near the anticipated time, so a latency beyond
// anticipated/SlowProofFactor says the device is weaker than it reports,
// even when the deadline's slack let it pass.
const SlowProofFactor = 0.5

// Throttled reports whether a device state says the device ran well below
// its maximum clock (under 80 %): a thermally or power-throttled device,
// whose slow proof says nothing about its model.
func Throttled(smClockMHz, smClockMaxMHz uint32) bool {
	return smClockMaxMHz > 0 && smClockMHz > 0 && float64(smClockMHz) < 0.8*float64(smClockMaxMHz)
}

// Match returns the index (NVML's numbering) of the report for the device
// at PCI (domain, bus, device), or -1. CUDA orders devices fastest first
// and honours CUDA_VISIBLE_DEVICES; NVML orders them by PCI bus; the PCI
// location is what both agree on.
func Match(reports []Report, domain, bus, device uint32) int {
	for i, r := range reports {
		if r.PCIDomain == domain && r.PCIBus == bus && r.PCIDevice == device {
			return i
		}
	}
	return -1
}
