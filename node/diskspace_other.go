//go:build !(linux || darwin)

package node

import "errors"

// freeBytes is not measured on this system: the disk is not watched.
func freeBytes(string) (uint64, error) { return 0, errors.ErrUnsupported }
