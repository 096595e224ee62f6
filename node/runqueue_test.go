package node

import (
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"
)

// spin keeps n goroutines computing for d.
func spin(n int, d time.Duration) {
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 1.0
			for time.Now().Before(end) {
				for range 10000 {
					x = x*1.0000001 + 1e-9
				}
			}
			_ = x
		}()
	}
	wg.Wait()
}

// TestStarvedShare: with the process alone its threads hardly wait for a
// core; with other processes burning every core beside it, they wait for
// a good share of their demand, and schedLag.starved says so.
func TestStarvedShare(t *testing.T) {
	if _, ok := readRunqueue(); !ok {
		t.Skip("no per-thread schedstat on this system")
	}
	if testing.Short() {
		t.Skip("burns the CPU for about 3 s")
	}
	procs := runtime.GOMAXPROCS(0)
	measure := func() float64 {
		s := &schedLag{}
		s.acquire()
		defer s.release()
		from := time.Now()
		spin(procs, 1500*time.Millisecond)
		return s.starved(from, time.Now())
	}
	alone := measure()
	var burners []*exec.Cmd
	for range 2 * procs {
		c := exec.Command("sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			t.Skip("cannot start a burner:", err)
		}
		burners = append(burners, c)
	}
	defer func() {
		for _, c := range burners {
			c.Process.Kill()
			c.Wait()
		}
	}()
	crowded := measure()
	t.Logf("starved share: alone %.2f, beside %d burners on %d processors %.2f", alone, len(burners), procs, crowded)
	if crowded < alone+0.3 {
		t.Errorf("beside burners the process waited %.2f of its demand, alone %.2f: the sampler does not see other processes", crowded, alone)
	}
}
