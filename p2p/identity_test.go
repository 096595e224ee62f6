package p2p

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckKeyFile: a missing key, or a link to nothing, is an error naming
// the file and poai init; a key others may read is a warning.
func TestCheckKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "identity.key")
	if _, err := CheckKeyFile(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "poai init") {
		t.Fatalf("missing key: %v", err)
	}
	if err := os.Symlink(filepath.Join(dir, "gone"), path); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckKeyFile(path); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("dangling link: %v", err)
	}
	os.Remove(path)
	if _, err := LoadOrCreateKey(path); err != nil {
		t.Fatal(err)
	}
	if w, err := CheckKeyFile(path); err != nil || len(w) != 0 {
		t.Fatalf("a 0600 key: %v, %v", w, err)
	}
	os.Chmod(path, 0o644)
	if w, err := CheckKeyFile(path); err != nil || len(w) != 1 || !strings.Contains(w[0], "0644") {
		t.Fatalf("a 0644 key: %v, %v", w, err)
	}
}

// TestKeyNotWrittenThroughPlantedLink: a link planted at the name the key
// used to be written through (identity.key.tmp) is not followed: its
// target is untouched, and the key lands at its path with mode 0600.
func TestKeyNotWrittenThroughPlantedLink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "identity.key")
	if err := os.Symlink(victim, path+".tmp"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("the link's target was overwritten: %q", b)
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi.Mode(), err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".identity.key-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
