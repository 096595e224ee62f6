//go:build !linux || !cgo

package nvml

import "fmt"

// Reports returns ErrUnavailable: this build cannot load NVML.
func Reports() ([]Report, error) {
	return nil, fmt.Errorf("%w: built without cgo or for a system other than Linux", ErrUnavailable)
}

// State returns ErrUnavailable: this build cannot load NVML.
func State(int) (smClock, smClockMax, temperature uint32, err error) {
	return 0, 0, 0, ErrUnavailable
}
