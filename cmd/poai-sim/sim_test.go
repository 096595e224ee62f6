package main

import (
	"strings"
	"testing"
	"time"
)

// TestSimRejectsBadFlags: bad counts and durations are errors naming
// their flags, all of them at once, returned before any node starts.
func TestSimRejectsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--devices", "bogus"}, []string{`--devices: "bogus" is not one of "host", "emulated"`}},
		{[]string{"--epochs", "0", "--peers", "1", "--target", "0s", "--rate", "0", "--allowance", "0s"},
			[]string{"--epochs: 0 is under 1", "--peers: 1 is under 3", "--target: 0s", "--rate: 0 is outside (0, 1]", "--allowance: 0s"}},
	} {
		start := time.Now()
		cmd := simCmd()
		cmd.SetArgs(c.args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.ExecuteContext(t.Context())
		if err == nil {
			t.Fatalf("%v accepted", c.args)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not contain %q", c.args, err, w)
			}
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%v took %v: something started before the flags were checked", c.args, d)
		}
	}
}
