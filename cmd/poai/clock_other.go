//go:build !linux

package main

import "time"

// clockCheck is not available on this system.
func clockCheck(time.Duration) doctorCheck {
	return doctorCheck{Name: "clock", Status: checkSkip, Detail: "clock synchronization is checked on Linux only"}
}
