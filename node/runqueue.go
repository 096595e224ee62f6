package node

import (
	"bytes"
	"os"
	"strconv"
)

// threadTimes is one thread's scheduler counters, in nanoseconds.
type threadTimes struct{ run, wait uint64 }

// runqueue follows how long this process's threads waited for a CPU while
// other processes held every core: the kernel's per-thread schedstat
// (Linux, /proc/self/task/<tid>/schedstat: time on a CPU, time waiting on
// a run queue, timeslices). The Go runtime's own scheduling latency
// (schedLag) cannot see it: a goroutine that has its P but whose thread
// the kernel does not run looks busy, not waiting.
type runqueue struct {
	prev map[int]threadTimes
}

// readRunqueue reads every thread's counters; ok is false where the
// kernel does not provide them.
func readRunqueue() (map[int]threadTimes, bool) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, false
	}
	out := make(map[int]threadTimes, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited
		}
		f := bytes.Fields(b)
		if len(f) < 2 {
			continue
		}
		run, err1 := strconv.ParseUint(string(f[0]), 10, 64)
		wait, err2 := strconv.ParseUint(string(f[1]), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out[tid] = threadTimes{run: run, wait: wait}
	}
	return out, len(out) > 0
}

// sample returns the process's threads' time on a CPU and waiting for one
// since the last sample, over the threads seen both times (nanoseconds);
// both are zero on the first sample and where schedstat is unavailable.
func (q *runqueue) sample() (run, wait uint64) {
	now, ok := readRunqueue()
	if !ok {
		return 0, 0
	}
	for tid, t := range now {
		if p, seen := q.prev[tid]; seen && t.run >= p.run && t.wait >= p.wait {
			run += t.run - p.run
			wait += t.wait - p.wait
		}
	}
	q.prev = now
	return run, wait
}
