package scoring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// filled returns a closed store in a fresh directory holding peers peer
// records and a trust vector of epoch 3, sealed.
func filled(t *testing.T, peers int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "scores")
	b, err := Open(context.Background(), dir, "self", DefaultParams(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range peers {
		if err := b.Record(att(fmt.Sprintf("c%d", i), fmt.Sprintf("p%d", i), "self", VerdictPass)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Roll(3); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func withExt(t *testing.T, dir, ext string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
	if len(m) == 0 {
		t.Fatalf("no %s file in %s", ext, dir)
	}
	return m
}

// TestDamagedStoreRefused: a store whose MANIFEST is deleted or cut short,
// or whose table is truncated, is refused at Open with an error wrapping
// ErrDamaged that names the problem and the ways out, without a panic and
// without losing a table file; an undamaged store reopens whole.
func TestDamagedStoreRefused(t *testing.T) {
	dir := filled(t, 3000)
	b, err := Open(context.Background(), dir, "self", DefaultParams(), nil)
	if err != nil {
		t.Fatalf("undamaged store: %v", err)
	}
	if n := len(b.Peers()); n != 3000 {
		t.Fatalf("reopened with %d peers, want 3000", n)
	}
	b.Close()

	for _, c := range []struct {
		name, want string
		damage     func(dir string)
	}{
		{"manifest deleted", "no MANIFEST", func(dir string) { os.Remove(filepath.Join(dir, "MANIFEST")) }},
		{"manifest cut short", "seal", func(dir string) { os.Truncate(filepath.Join(dir, "MANIFEST"), 8) }},
		{"table truncated", ".sst", func(dir string) {
			for _, p := range withExt(t, dir, ".sst") {
				fi, _ := os.Stat(p)
				os.Truncate(p, fi.Size()/2)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filled(t, 3000)
			c.damage(dir)
			before := withExt(t, dir, ".sst")
			_, err := Open(context.Background(), dir, "self", DefaultParams(), nil)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--reset-store") {
				t.Fatalf("open: %v; want ErrDamaged naming %q and the ways out", err, c.want)
			}
			for _, p := range before {
				_, inDir := os.Stat(p)
				_, kept := os.Stat(filepath.Join(dir+".preopen", filepath.Base(p)))
				if inDir != nil && kept != nil {
					t.Errorf("table %s lost", p)
				}
			}
		})
	}
}

// TestCrashImageWithDamagedLog: the store copied while open (what a crash
// leaves: every record synced, the newest only in the write-ahead log)
// reopens whole; with its write-ahead log damaged it holds less than its
// seal and is refused.
func TestCrashImageWithDamagedLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "scores")
	b, err := Open(context.Background(), dir, "self", DefaultParams(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 500 {
		if err := b.Record(att(fmt.Sprintf("c%d", i), fmt.Sprintf("p%d", i), "self", VerdictPass)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Roll(2); err != nil {
		t.Fatal(err)
	}
	image := func() string {
		dst := filepath.Join(t.TempDir(), "scores")
		os.Mkdir(dst, 0o700)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() == "LOCK" {
				continue
			}
			copyFile(t, filepath.Join(dir, e.Name()), filepath.Join(dst, e.Name()))
		}
		copyFile(t, SealPath(dir), SealPath(dst))
		return dst
	}
	whole := image()
	c, err := Open(context.Background(), whole, "self", DefaultParams(), nil)
	if err != nil {
		t.Fatalf("crash image: %v", err)
	}
	if n := len(c.Peers()); n != 500 {
		t.Errorf("crash image reopened with %d peers, want 500", n)
	}
	c.Close()

	damaged := image()
	for _, p := range withExt(t, damaged, ".mem") {
		f, _ := os.OpenFile(p, os.O_RDWR, 0)
		f.WriteAt(make([]byte, 64<<10), 0)
		f.Close()
	}
	if _, err := Open(context.Background(), damaged, "self", DefaultParams(), nil); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "seal") {
		t.Fatalf("damaged write-ahead log: %v, want ErrDamaged against the seal", err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}

// TestReset moves a store aside with its seal, and the next Open starts
// empty.
func TestReset(t *testing.T) {
	dir := filled(t, 10)
	aside, err := Reset(dir)
	if err != nil || aside == "" {
		t.Fatalf("reset: %q, %v", aside, err)
	}
	if _, err := os.Stat(filepath.Join(aside, "MANIFEST")); err != nil {
		t.Fatalf("the old store is not at %s: %v", aside, err)
	}
	b, err := Open(context.Background(), dir, "self", DefaultParams(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n := len(b.Peers()); n != 0 {
		t.Fatalf("after reset %d peers", n)
	}
}

// TestCloseTwice: a second Close does nothing (a node closed by its
// operator and again by its owner's cleanup).
func TestCloseTwice(t *testing.T) {
	b, err := Open(context.Background(), filepath.Join(t.TempDir(), "scores"), "self", DefaultParams(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestBackupRestore: a store backed up, then lost, is restored whole into
// an empty directory, sealed, and a non-empty target is refused.
func TestBackupRestore(t *testing.T) {
	dir := filled(t, 300)
	var buf bytes.Buffer
	n, err := Backup(context.Background(), dir, &buf)
	if err != nil || n != 300 {
		t.Fatalf("backup: %d peers, %v", n, err)
	}
	if _, err := Restore(context.Background(), dir, bytes.NewReader(buf.Bytes())); err == nil {
		t.Fatal("restored over an existing store")
	}
	if _, err := Reset(dir); err != nil {
		t.Fatal(err)
	}
	n, err = Restore(context.Background(), dir, bytes.NewReader(buf.Bytes()))
	if err != nil || n != 300 {
		t.Fatalf("restore: %d peers, %v", n, err)
	}
	if s, ok, err := readSeal(dir); err != nil || !ok || s.Peers != 300 {
		t.Fatalf("seal after restore: %+v %v %v", s, ok, err)
	}
	b, err := Open(context.Background(), dir, "self", DefaultParams(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := len(b.Peers()); got != 300 {
		t.Fatalf("reopened with %d peers", got)
	}
}
