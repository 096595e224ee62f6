package challenge

import "time"

// EpochClock maps wall-clock time to epoch numbers: epoch e covers
// [Genesis + e·Length, Genesis + (e+1)·Length). Times before Genesis are
// epoch 0.
type EpochClock struct {
	Genesis time.Time
	Length  time.Duration
}

// At returns the epoch that contains t.
func (c EpochClock) At(t time.Time) uint64 {
	if t.Before(c.Genesis) || c.Length <= 0 {
		return 0
	}
	return uint64(t.Sub(c.Genesis) / c.Length)
}

// Start returns the first instant of epoch e.
func (c EpochClock) Start(e uint64) time.Time {
	return c.Genesis.Add(time.Duration(e) * c.Length)
}
