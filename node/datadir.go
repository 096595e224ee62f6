package node

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/poai-network/poai/p2p"
)

// CheckDataDir checks a data directory before `poai run` starts a node in
// it: the identity key must exist (p2p.CheckKeyFile: run never creates
// one), and it returns warnings for modes that let other users in — the
// directory beyond 0700, the key or the config file (which may hold the
// API token) beyond 0600. Tighten them with `poai init`.
func CheckDataDir(dir, cfgPath string) (warnings []string, err error) {
	warnings, err = p2p.CheckKeyFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		warnings = append(warnings, fmt.Sprintf("data directory %s has mode %04o: other users can list it; chmod 700 it (or run poai init)", dir, fi.Mode().Perm()))
	}
	if fi, err := os.Stat(cfgPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		warnings = append(warnings, fmt.Sprintf("config %s has mode %04o: others can read it, and the API token in it; chmod 600 it (or run poai init)", cfgPath, fi.Mode().Perm()))
	}
	return warnings, nil
}

// TightenDataDir sets the data directory to mode 0700 and the key and
// config inside it to 0600 where they are looser, and returns what it
// changed, for `poai init` to report.
func TightenDataDir(dir string) (changed []string, err error) {
	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{{dir, 0o700}, {filepath.Join(dir, KeyFile), 0o600}, {filepath.Join(dir, ConfigFile), 0o600}} {
		fi, err := os.Lstat(f.path)
		if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			continue // absent, or a link the operator made: left alone
		}
		if fi.Mode().Perm()&^f.mode != 0 {
			if err := os.Chmod(f.path, f.mode); err != nil {
				return changed, err
			}
			changed = append(changed, fmt.Sprintf("%s: mode %04o -> %04o", f.path, fi.Mode().Perm(), f.mode))
		}
	}
	return changed, nil
}
