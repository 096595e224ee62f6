//go:build !linux || !cgo

package nvml

import (
	"fmt"

	"github.com/poai-network/poai/challenge/pb"
)

// Reports returns ErrUnavailable: this build cannot load NVML.
func Reports() ([]*pb.DeviceReport, error) {
	return nil, fmt.Errorf("%w: built without cgo or for a system other than Linux", ErrUnavailable)
}

// State returns ErrUnavailable: this build cannot load NVML.
func State(int) (smClock, smClockMax, temperature uint32, err error) {
	return 0, 0, 0, ErrUnavailable
}
