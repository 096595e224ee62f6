//go:build linux && cgo

package nvml

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/poai-network/poai/challenge/pb"
)

// Reports returns one report per device NVML sees, or an error wrapping
// ErrUnavailable. Fields NVML cannot read on a device stay zero.
func Reports() ([]*pb.DeviceReport, error) {
	if r := nvml.Init(); r != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, nvml.ErrorString(r))
	}
	defer nvml.Shutdown()
	n, r := nvml.DeviceGetCount()
	if r != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml: device count: %s", nvml.ErrorString(r))
	}
	driver, _ := nvml.SystemGetDriverVersion()
	out := make([]*pb.DeviceReport, 0, n)
	for i := 0; i < n; i++ {
		d, r := nvml.DeviceGetHandleByIndex(i)
		if r != nvml.SUCCESS {
			return nil, fmt.Errorf("nvml: device %d: %s", i, nvml.ErrorString(r))
		}
		rep := &pb.DeviceReport{DriverVersion: driver}
		rep.Name, _ = d.GetName()
		rep.Uuid, _ = d.GetUUID()
		if mem, r := d.GetMemoryInfo(); r == nvml.SUCCESS {
			rep.MemoryTotalBytes = mem.Total
		}
		rep.SmClockMaxMhz, _ = d.GetMaxClockInfo(nvml.CLOCK_SM)
		rep.SmClockMhz, _ = d.GetClockInfo(nvml.CLOCK_SM)
		rep.MemClockMaxMhz, _ = d.GetMaxClockInfo(nvml.CLOCK_MEM)
		rep.PowerLimitMw, _ = d.GetPowerManagementLimit()
		rep.TemperatureC, _ = d.GetTemperature(nvml.TEMPERATURE_GPU)
		if cur, _, r := d.GetEccMode(); r == nvml.SUCCESS {
			rep.EccEnabled = cur == nvml.FEATURE_ENABLED
		}
		if e, r := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); r == nvml.SUCCESS {
			rep.EccUncorrected = e
		}
		if g, r := d.GetCurrPcieLinkGeneration(); r == nvml.SUCCESS {
			rep.PcieGen = uint32(g)
		}
		if w, r := d.GetCurrPcieLinkWidth(); r == nvml.SUCCESS {
			rep.PcieWidth = uint32(w)
		}
		if pci, r := d.GetPciInfo(); r == nvml.SUCCESS {
			rep.PciDomain, rep.PciBus, rep.PciDevice = pci.Domain, pci.Bus, pci.Device
		}
		out = append(out, rep)
	}
	return out, nil
}

// State returns device ordinal's SM clock, its maximum (MHz) and its
// temperature (°C) now, or an error wrapping ErrUnavailable.
func State(ordinal int) (smClock, smClockMax, temperature uint32, err error) {
	if r := nvml.Init(); r != nvml.SUCCESS {
		return 0, 0, 0, fmt.Errorf("%w: %s", ErrUnavailable, nvml.ErrorString(r))
	}
	defer nvml.Shutdown()
	d, r := nvml.DeviceGetHandleByIndex(ordinal)
	if r != nvml.SUCCESS {
		return 0, 0, 0, fmt.Errorf("nvml: device %d: %s", ordinal, nvml.ErrorString(r))
	}
	smClock, _ = d.GetClockInfo(nvml.CLOCK_SM)
	smClockMax, _ = d.GetMaxClockInfo(nvml.CLOCK_SM)
	temperature, _ = d.GetTemperature(nvml.TEMPERATURE_GPU)
	return smClock, smClockMax, temperature, nil
}
