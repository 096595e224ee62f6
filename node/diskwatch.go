package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// MinFreeBytes is the least free space a node starts with, and keeps, on
// the filesystem of its data directory: 256 MiB, four of the score store's
// 64 MiB value-log files. Badger preallocates and memory-maps its logs, and
// a write into a log the disk could not back kills the process (SIGBUS),
// again at every restart while the disk stays full.
const MinFreeBytes = 256 << 20

// DiskCheckInterval is how often a running node measures its free space.
const DiskCheckInterval = 10 * time.Second

// WithFreeSpace replaces how the node measures the free space of its data
// directory (statfs) and how often (DiskCheckInterval): tests fill a disk
// this way.
func WithFreeSpace(free func(dir string) (uint64, error), every time.Duration) Option {
	return func(o *options) { o.freeSpace, o.diskEvery = free, every }
}

// Fatal delivers at most one error for which the node must stop (its
// disk nearly full): the daemon closes the node cleanly and exits with it.
// The node has already stopped proving, challenging and writing scores
// when it is sent.
func (n *Node) Fatal() <-chan error { return n.disk.fatal }

// diskWatch guards the free space of a node's data directory
// (MinFreeBytes).
type diskWatch struct {
	dir string
	// free measures the free bytes of dir's filesystem (FreeBytes, or
	// WithFreeSpace's); every is how often watch measures.
	free  func(dir string) (uint64, error)
	every time.Duration
	log   *slog.Logger
	// fatal carries the error the node stopped for (Node.Fatal).
	fatal chan error
}

// newDiskWatch returns the watch of dir as o configures it.
func newDiskWatch(dir string, o options) diskWatch {
	w := diskWatch{dir: dir, free: o.freeSpace, every: o.diskEvery, log: o.log, fatal: make(chan error, 1)}
	if w.free == nil {
		w.free = FreeBytes
	}
	if w.every <= 0 {
		w.every = DiskCheckInterval
	}
	return w
}

// check returns an error when the data directory's filesystem has
// less than MinFreeBytes free; nil when it cannot be measured here.
func (w *diskWatch) check() error {
	free, err := w.free(w.dir)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("free space of data directory %s: %w", w.dir, err)
	}
	if free < MinFreeBytes {
		return fmt.Errorf("data directory %s: %d MiB free, below the %d MiB a node needs to write its score store safely (a full disk kills Badger mid-write): free some space, or move --data-dir", w.dir, free>>20, MinFreeBytes>>20)
	}
	return nil
}

// watch checks the free space every interval until done; below
// MinFreeBytes it says so, stops the node's work (stop) and sends the
// error on fatal.
func (w *diskWatch) watch(done <-chan struct{}, stop func()) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if err := w.check(); err != nil {
			w.log.Error("disk nearly full: stopping the node before its score store is damaged", "err", err)
			stop()
			select {
			case w.fatal <- err:
			default:
			}
			return
		}
	}
}
