// Package nvml reads what each NVIDIA GPU says of itself through NVML
// (go-nvml, which loads libnvidia-ml.so.1 at run time): name, UUID,
// memory, clocks, power limit, temperature, ECC mode and errors, PCIe link
// and driver version. The node signs these reports into its device claim,
// and CrossCheck compares them with the claimed model's catalog entry.
//
// A report is the device's word, not evidence: a modified driver or a
// shim over NVML can say anything. What a report gives challengers is a
// statement that is either consistent with the proofs or a signed lie —
// a claim whose proofs run far below its reported model is flagged.
package nvml

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// ErrUnavailable reports that NVML is not installed, does not initialise,
// or that the binary was built without cgo.
var ErrUnavailable = errors.New("NVML unavailable")

// MemoryTolerance is how far a report's memory total may sit from the
// catalog's figure before CrossCheck flags it: drivers reserve some memory
// and vendors round (an H200's NVML total is 150.75 GB against the 141 GB
// of its spec sheet, GB vs GiB), so only a gap beyond 15 % is suspect.
const MemoryTolerance = 0.15

// CrossCheck compares the NVML reports in a claim with the claim itself
// and with the catalog entry of its model. It returns one finding per
// inconsistency, empty when there is none or nothing to compare.
func CrossCheck(c *pb.DeviceClaim) []string {
	var out []string
	reports := c.GetDevices()
	if len(reports) == 0 {
		return nil
	}
	if c.GetCount() > 0 && int(c.GetCount()) != len(reports) {
		out = append(out, fmt.Sprintf("claims %d devices but reports %d", c.GetCount(), len(reports)))
	}
	spec, ok := gpu.LookupDevice(c.GetModel())
	for i, r := range reports {
		if ok && !strings.EqualFold(strings.TrimSpace(r.GetName()), strings.TrimSpace(c.GetModel())) {
			if alt, found := gpu.LookupDevice(r.GetName()); !found || alt.Model != spec.Model {
				out = append(out, fmt.Sprintf("device %d reports %q, the claim says %q", i, r.GetName(), c.GetModel()))
			}
		}
		if ok && spec.VRAMBytes > 0 {
			gap := math.Abs(float64(r.GetMemoryTotalBytes())-float64(spec.VRAMBytes)) / float64(spec.VRAMBytes)
			if gap > MemoryTolerance {
				out = append(out, fmt.Sprintf("device %d reports %d bytes of memory, the catalog's %s has %d", i, r.GetMemoryTotalBytes(), spec.Model, spec.VRAMBytes))
			}
		}
		if r.GetEccUncorrected() > 0 {
			out = append(out, fmt.Sprintf("device %d reports %d uncorrected ECC errors", i, r.GetEccUncorrected()))
		}
	}
	return out
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
func Match(reports []*pb.DeviceReport, domain, bus, device uint32) int {
	for i, r := range reports {
		if r.GetPciDomain() == domain && r.GetPciBus() == bus && r.GetPciDevice() == device {
			return i
		}
	}
	return -1
}
