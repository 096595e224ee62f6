// Package flagcheck gathers the problems of a command's flags, each
// naming its flag, so that a command reports them all at once, before it
// starts anything.
package flagcheck

import (
	"errors"
	"fmt"
	"time"

	"github.com/poai-network/poai/node/devnet"
)

// Check gathers the problems of a command's flags, each naming its flag.
// The zero value is ready to use.
type Check []error

// Bad records a problem of --flag.
func (c *Check) Bad(flag, format string, a ...any) {
	*c = append(*c, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, a...)))
}

// Positive requires d > 0.
func (c *Check) Positive(flag string, d time.Duration) {
	if d <= 0 {
		c.Bad(flag, "%v is not a positive duration", d)
	}
}

// NonNegative requires d >= 0 (0 has a documented meaning).
func (c *Check) NonNegative(flag string, d time.Duration) {
	if d < 0 {
		c.Bad(flag, "%v is negative", d)
	}
}

// AtLeast requires n >= lo.
func (c *Check) AtLeast(flag string, n, lo int) {
	if n < lo {
		c.Bad(flag, "%d is under %d", n, lo)
	}
}

// Between requires lo <= n <= hi.
func (c *Check) Between(flag string, n, lo, hi int) {
	if n < lo || n > hi {
		c.Bad(flag, "%d is outside %d..%d", n, lo, hi)
	}
}

// Devices requires a devnet.DeviceMode.
func (c *Check) Devices(flag, v string) {
	if v != string(devnet.DevicesHost) && v != string(devnet.DevicesEmulated) {
		c.Bad(flag, "%q is neither %q nor %q", v, devnet.DevicesHost, devnet.DevicesEmulated)
	}
}

// Err returns the problems joined (errors.Join), or nil.
func (c Check) Err() error { return errors.Join(c...) }
