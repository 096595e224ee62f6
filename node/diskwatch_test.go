package node

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestStartRefusesFullDisk: on a data directory's filesystem with less
// than MinFreeBytes free, Start fails with an error naming the directory
// and the space, before the score store is opened.
func TestStartRefusesFullDisk(t *testing.T) {
	dir := t.TempDir()
	n, err := New(dir, testConfig(), WithFreeSpace(func(string) (uint64, error) { return 10 << 20, nil }, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(t.Context())
	if err == nil {
		n.Close()
		t.Fatal("started on a full disk")
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "10 MiB free") {
		t.Fatalf("error does not name the directory and its free space: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ScoresDir)); err == nil {
		t.Fatal("the score store was opened")
	}
}

// TestFullDiskStopsNode: when the free space drops below MinFreeBytes
// while it runs, the node stops its work and reports the error on Fatal,
// and closes cleanly.
func TestFullDiskStopsNode(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 40)
	n, err := New(t.TempDir(), testConfig(), WithFreeSpace(func(string) (uint64, error) { return free.Load(), nil }, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-n.Fatal():
		t.Fatalf("fatal with the disk free: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	free.Store(100 << 20)
	select {
	case err := <-n.Fatal():
		if !strings.Contains(err.Error(), "100 MiB free") {
			t.Errorf("fatal error: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no fatal error 5 s after the disk filled")
	}
	if n.ctx.Err() == nil {
		t.Error("the node's work goes on")
	}
	if err := n.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}
