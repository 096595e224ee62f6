package main

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// clockCheck asks the kernel (adjtimex) whether NTP synchronizes the
// clock and how far off it may be, against the protocol's timestamp limit
// maxSkew: a message stamped beyond it is ignored by its receivers.
func clockCheck(maxSkew time.Duration) doctorCheck {
	c := doctorCheck{Name: "clock"}
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		c.Status, c.Detail = checkSkip, "adjtimex: "+err.Error()
		return c
	}
	maxErr := time.Duration(tx.Maxerror) * time.Microsecond
	switch {
	case state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0:
		c.Status = checkWarn
		c.Detail = fmt.Sprintf("not synchronized by NTP; peers ignore messages stamped more than %v from their clocks", maxSkew)
		c.Fix = "enable time synchronization (systemd-timesyncd, chrony or ntpd)"
	case maxErr > maxSkew/4:
		c.Status = checkFail
		c.Detail = fmt.Sprintf("the kernel's error bound is %v, against the protocol's %v", maxErr, maxSkew)
		c.Fix = "check the NTP daemon's servers"
	default:
		c.Status = checkOK
		c.Detail = fmt.Sprintf("synchronized, error bound %v (limit %v)", maxErr.Round(time.Microsecond), maxSkew)
	}
	return c
}
