//go:build linux || darwin

package node

import "syscall"

// FreeBytes returns the bytes available to an unprivileged writer on the
// filesystem holding dir (statfs: available blocks × block size).
func FreeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
