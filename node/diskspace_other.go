//go:build !(linux || darwin)

package node

import "errors"

// FreeBytes is not measured on this system (errors.ErrUnsupported): the
// disk is not watched.
func FreeBytes(string) (uint64, error) { return 0, errors.ErrUnsupported }
