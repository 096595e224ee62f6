package flagcheck

import (
	"strings"
	"testing"
	"time"
)

// TestCheckJoinsEveryProblem: each failed rule names its flag, all are
// reported together, and a clean set of flags gives nil.
func TestCheckJoinsEveryProblem(t *testing.T) {
	var c Check
	c.Positive("target", 0)
	c.NonNegative("epoch", -time.Second)
	c.AtLeast("peers", 1, 3)
	c.Between("waves", 9, 0, 4)
	c.OneOf("devices", "gpu", "host", "emulated")
	err := c.Err()
	for _, want := range []string{"--target: 0s", "--epoch: -1s is negative", "--peers: 1 is under 3", "--waves: 9 is outside 0..4", `--devices: "gpu" is not one of "host", "emulated"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	var ok Check
	ok.Positive("target", time.Second)
	ok.AtLeast("peers", 3, 3)
	ok.OneOf("devices", "host", "host", "emulated")
	if err := ok.Err(); err != nil {
		t.Errorf("clean flags: %v", err)
	}
}
