package challenge

import (
	"fmt"
	"math"
	"regexp"
	"strconv"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// MemoryTolerance is how far a report's memory total may sit from the
// catalog's figure before CrossCheck flags it: drivers reserve some memory
// and vendors round (an H200's NVML total is 150.75 GB against the 141 GB
// of its spec sheet, GB vs GiB), so only a gap beyond 15 % is suspect.
const MemoryTolerance = 0.15

// Physical bounds on what any NVIDIA device reports, for models without
// a catalog entry as well as those with one.
const (
	// MaxTemperatureC is above every NVIDIA GPU's shutdown temperature
	// (about 90–95 °C on data-centre boards): a device that reports more
	// would have stopped.
	MaxTemperatureC = 110
	// MaxAnySMClockMHz is above any NVIDIA GPU's clock table (the RTX
	// 4090's is the highest in the catalog, about 3.1 GHz).
	MaxAnySMClockMHz = 4000
	// MaxPCIeGen is the newest PCIe generation (6.0, 2022).
	MaxPCIeGen = 6
)

// driverVersion is the form of an NVIDIA driver version as NVML reports
// it: a three-digit branch, then one or two numbers ("580.159.04",
// "537.58").
var driverVersion = regexp.MustCompile(`^([0-9]{3})\.[0-9]{1,3}(\.[0-9]{1,3})?$`)

// CrossCheck compares the NVML reports in a claim with the claim itself,
// with physical bounds, and with the catalog entry of its model. It
// returns one finding per inconsistency, empty when there is none or
// nothing to compare. A catalog claim of more than one device is a
// finding even without reports: a node proves one device (the CUDA
// backend proves on one, and signs that one's report), yet challengers
// hold the claim to the count it states (Planner.RatesFor), so
// it fails its proofs. Models are looked up in gpu.DefaultCatalog
// (CrossCheckIn takes another).
func CrossCheck(c *pb.DeviceClaim) []string { return CrossCheckIn(gpu.DefaultCatalog, c) }

// CrossCheckIn is CrossCheck with the models of cat (a devnet's
// gpu.DevnetCatalog).
func CrossCheckIn(cat *gpu.DeviceCatalog, c *pb.DeviceClaim) []string {
	var out []string
	spec, ok := cat.Lookup(c.GetModel())
	if ok && c.GetCount() > 1 {
		out = append(out, fmt.Sprintf("claims %d %s devices; a node proves one, and is held to all it claims", c.GetCount(), spec.Model))
	}
	reports := c.GetDevices()
	if len(reports) == 0 {
		return out
	}
	if c.GetCount() > 0 && int(c.GetCount()) != len(reports) {
		out = append(out, fmt.Sprintf("claims %d devices but reports %d", c.GetCount(), len(reports)))
	}
	for i, r := range reports {
		if ok && gpu.NormalizeModel(r.GetName()) != gpu.NormalizeModel(c.GetModel()) {
			if alt, found := cat.Lookup(r.GetName()); !found || alt.Model != spec.Model {
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
		out = append(out, outOfBounds(i, r, spec, ok)...)
	}
	return out
}

// outOfBounds returns a finding for each value of report i that no
// device could report: beyond the physical bounds above, or, for a
// catalog model (ok), beyond its entry's maximum SM clock, power limit,
// PCIe generation or below its first driver branch. Zero values are
// fields NVML could not read and are not findings.
func outOfBounds(i int, r *pb.DeviceReport, spec gpu.DeviceSpec, ok bool) []string {
	var out []string
	maxClock, maxGen := uint32(MaxAnySMClockMHz), uint32(MaxPCIeGen)
	if ok {
		maxClock, maxGen = spec.MaxSMClockMHz, spec.PCIeGen
	}
	if c := max(r.GetSmClockMaxMhz(), r.GetSmClockMhz()); c > maxClock {
		out = append(out, fmt.Sprintf("device %d reports an SM clock of %d MHz, above the %d MHz %s", i, c, maxClock, boundOf(spec, ok)))
	}
	if r.GetSmClockMaxMhz() > 0 && r.GetSmClockMhz() > r.GetSmClockMaxMhz() {
		out = append(out, fmt.Sprintf("device %d reports an SM clock of %d MHz, above its own maximum %d MHz", i, r.GetSmClockMhz(), r.GetSmClockMaxMhz()))
	}
	if t := r.GetTemperatureC(); t > MaxTemperatureC {
		out = append(out, fmt.Sprintf("device %d reports %d °C, above any GPU's shutdown temperature", i, t))
	}
	if ok && r.GetPowerLimitMw() > spec.MaxPowerW*1000 {
		out = append(out, fmt.Sprintf("device %d reports a power limit of %d W, above the %s's %d W", i, r.GetPowerLimitMw()/1000, spec.Model, spec.MaxPowerW))
	}
	if g := r.GetPcieGen(); g > maxGen {
		out = append(out, fmt.Sprintf("device %d reports PCIe generation %d, above the %d %s", i, g, maxGen, boundOf(spec, ok)))
	}
	switch r.GetPcieWidth() {
	case 0, 1, 2, 4, 8, 16:
	default:
		out = append(out, fmt.Sprintf("device %d reports a PCIe link of width %d", i, r.GetPcieWidth()))
	}
	if v := r.GetDriverVersion(); v != "" {
		m := driverVersion.FindStringSubmatch(v)
		if m == nil {
			out = append(out, fmt.Sprintf("device %d reports driver version %q, not an NVIDIA driver version", i, v))
		} else if major, _ := strconv.Atoi(m[1]); ok && major < spec.MinDriver {
			out = append(out, fmt.Sprintf("device %d reports driver %s, older than the first driver for the %s (%d)", i, v, spec.Model, spec.MinDriver))
		}
	}
	return out
}

// boundOf names where a bound comes from.
func boundOf(spec gpu.DeviceSpec, ok bool) string {
	if ok {
		return "maximum for the " + spec.Model
	}
	return "maximum of any NVIDIA GPU"
}
