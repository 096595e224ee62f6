package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/poai-network/poai/node/devnet"
)

// flagCheck gathers the problems of a command's flags, each naming its
// flag, so a command checks them all before it starts anything.
type flagCheck []error

func (c *flagCheck) bad(flag, format string, a ...any) {
	*c = append(*c, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, a...)))
}

// positive requires d > 0.
func (c *flagCheck) positive(flag string, d time.Duration) {
	if d <= 0 {
		c.bad(flag, "%v is not a positive duration", d)
	}
}

// nonNegative requires d >= 0 (0 has a documented meaning).
func (c *flagCheck) nonNegative(flag string, d time.Duration) {
	if d < 0 {
		c.bad(flag, "%v is negative", d)
	}
}

// atLeast requires n >= lo.
func (c *flagCheck) atLeast(flag string, n, lo int) {
	if n < lo {
		c.bad(flag, "%d is under %d", n, lo)
	}
}

// between requires lo <= n <= hi.
func (c *flagCheck) between(flag string, n, lo, hi int) {
	if n < lo || n > hi {
		c.bad(flag, "%d is outside %d..%d", n, lo, hi)
	}
}

// devices requires a devnet.DeviceMode.
func (c *flagCheck) devices(flag, v string) {
	if v != string(devnet.DevicesHost) && v != string(devnet.DevicesEmulated) {
		c.bad(flag, "%q is neither %q nor %q", v, devnet.DevicesHost, devnet.DevicesEmulated)
	}
}

func (c flagCheck) err() error { return errors.Join(c...) }
