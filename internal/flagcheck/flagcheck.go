// Package flagcheck gathers the problems of a command's flags, each
// naming its flag, so that a command reports them all at once, before it
// starts anything.
package flagcheck

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
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

// OneOf requires v to be one of allowed, and names them when it is not.
func (c *Check) OneOf(flag, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		q := make([]string, len(allowed))
		for i, a := range allowed {
			q[i] = strconv.Quote(a)
		}
		c.Bad(flag, "%q is not one of %s", v, strings.Join(q, ", "))
	}
}

// Err returns the problems joined (errors.Join), or nil.
func (c Check) Err() error { return errors.Join(c...) }
