// Package atomicfile writes files so that a crash leaves either the old
// content or the new, never a torn file, and never writes through a link
// planted at a predictable temporary name.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data: it writes a fresh temporary file in
// path's directory (an unpredictable name, created exclusively with mode
// 0600), syncs it and renames it over path, which replaces a link at path
// rather than writing through it. The temporary file is removed on error.
func Write(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
