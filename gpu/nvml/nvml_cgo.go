//go:build linux && cgo

package nvml

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Reports returns one report per device NVML sees, or an error wrapping
// ErrUnavailable. Fields NVML cannot read on a device stay zero.
func Reports() ([]Report, error) {
	if r := nvml.Init(); r != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, nvml.ErrorString(r))
	}
	defer nvml.Shutdown()
	n, r := nvml.DeviceGetCount()
	if r != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml: device count: %s", nvml.ErrorString(r))
	}
	driver, _ := nvml.SystemGetDriverVersion()
	out := make([]Report, 0, n)
	for i := 0; i < n; i++ {
		d, r := nvml.DeviceGetHandleByIndex(i)
		if r != nvml.SUCCESS {
			return nil, fmt.Errorf("nvml: device %d: %s", i, nvml.ErrorString(r))
		}
		rep := Report{DriverVersion: driver}
		rep.Name, _ = d.GetName()
		rep.UUID, _ = d.GetUUID()
		if mem, r := d.GetMemoryInfo(); r == nvml.SUCCESS {
			rep.MemoryTotalBytes = mem.Total
		}
		rep.SMClockMaxMHz, _ = d.GetMaxClockInfo(nvml.CLOCK_SM)
		rep.SMClockMHz, _ = d.GetClockInfo(nvml.CLOCK_SM)
		rep.MemClockMaxMHz, _ = d.GetMaxClockInfo(nvml.CLOCK_MEM)
		rep.PowerLimitMW, _ = d.GetPowerManagementLimit()
		rep.TemperatureC, _ = d.GetTemperature(nvml.TEMPERATURE_GPU)
		if cur, _, r := d.GetEccMode(); r == nvml.SUCCESS {
			rep.ECCEnabled = cur == nvml.FEATURE_ENABLED
		}
		if e, r := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); r == nvml.SUCCESS {
			rep.ECCUncorrected = e
		}
		if g, r := d.GetCurrPcieLinkGeneration(); r == nvml.SUCCESS {
			rep.PCIeGen = uint32(g)
		}
		if w, r := d.GetCurrPcieLinkWidth(); r == nvml.SUCCESS {
			rep.PCIeWidth = uint32(w)
		}
		if pci, r := d.GetPciInfo(); r == nvml.SUCCESS {
			rep.PCIDomain, rep.PCIBus, rep.PCIDevice = pci.Domain, pci.Bus, pci.Device
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
