package node

import (
	"errors"
	"fmt"
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
func (n *Node) Fatal() <-chan error { return n.fatal }

// checkDisk returns an error when the data directory's filesystem has
// less than MinFreeBytes free; nil when it cannot be measured here.
func (n *Node) checkDisk() error {
	measure := n.o.freeSpace
	if measure == nil {
		measure = FreeBytes
	}
	free, err := measure(n.dir)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("free space of data directory %s: %w", n.dir, err)
	}
	if free < MinFreeBytes {
		return fmt.Errorf("data directory %s: %d MiB free, below the %d MiB a node needs to write its score store safely (a full disk kills Badger mid-write): free some space, or move --data-dir", n.dir, free>>20, MinFreeBytes>>20)
	}
	return nil
}

// watchDisk checks the free space every interval until ctx ends; below
// MinFreeBytes it says so, stops the node's work (cancel) and sends the
// error on Fatal.
func (n *Node) watchDisk(done <-chan struct{}, stop func()) {
	every := n.o.diskEvery
	if every <= 0 {
		every = DiskCheckInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if err := n.checkDisk(); err != nil {
			n.log.Error("disk nearly full: stopping the node before its score store is damaged", "err", err)
			stop()
			select {
			case n.fatal <- err:
			default:
			}
			return
		}
	}
}
