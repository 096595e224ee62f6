package scoring

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/y"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/internal/atomicfile"
)

// Seal is the small integrity record a Book keeps beside its store, outside
// Badger's files (dir + ".seal"): how many peers it held and its last
// trust epoch when last sealed. Peer records are never deleted, so a store
// that opens with fewer peers, or an older trust vector, lost data; Open
// refuses it rather than start with a thinner history and overwrite the
// old tables at the next shutdown.
type Seal struct {
	Peers   int       `json:"peers"`
	Epoch   uint64    `json:"epoch"`
	Written time.Time `json:"written"`
}

// SealPath returns where the seal of the store in dir lives.
func SealPath(dir string) string { return filepath.Clean(dir) + ".seal" }

// readSeal returns the store's seal, or ok false when there is none (a
// new store, or one from before seals).
func readSeal(dir string) (s Seal, ok bool, err error) {
	b, err := os.ReadFile(SealPath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return Seal{}, false, nil
	}
	if err != nil {
		return Seal{}, false, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return Seal{}, false, fmt.Errorf("%w: seal %s: %v", ErrDamaged, SealPath(dir), err)
	}
	return s, true, nil
}

// writeSeal replaces the seal atomically (atomicfile.Write).
func writeSeal(dir string, s Seal) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.Write(SealPath(dir), b)
}

// seal records the book's peer count and trust epoch, after syncing the
// store so that the seal never claims more than the disk holds.
// It holds the book's lock only to read the counts: the disk syncs happen
// outside it, and what is synced is at least what was counted (records
// are only added).
func (b *Book) seal() error {
	b.mu.RLock()
	peers, epoch := len(b.peers), b.vector.Epoch
	b.mu.RUnlock()
	if err := b.db.Sync(); err != nil {
		return err
	}
	if err := writeSeal(b.dir, Seal{Peers: peers, Epoch: epoch, Written: time.Now().UTC()}); err != nil {
		return fmt.Errorf("seal score store: %w", err)
	}
	return nil
}

// checkSeal compares the opened store with its seal.
func (b *Book) checkSeal() error {
	s, ok, err := readSeal(b.dir)
	if err != nil || !ok {
		return err
	}
	b.mu.RLock()
	peers, epoch := len(b.peers), b.vector.Epoch
	b.mu.RUnlock()
	if peers < s.Peers || epoch < s.Epoch {
		return fmt.Errorf("%w: %s holds %d peers and trust epoch %d, but its seal %s (written %s) says %d peers and epoch %d: its files lost data (a deleted MANIFEST, a damaged write-ahead log). %s",
			ErrDamaged, b.dir, peers, epoch, SealPath(b.dir), s.Written.Format(time.RFC3339), s.Peers, s.Epoch, recovery)
	}
	return nil
}

// recovery names what an operator can do about a damaged store.
const recovery = "Restore the store from a backup (move it aside, then poai store restore --in FILE), or start afresh with 'poai run --reset-store', which moves the damaged store aside"

// preOpen checks the store in dir before Badger opens it, and keeps hard
// links to its tables in dir + ".preopen" (returned; "" when there are no
// tables): Badger deletes at open every table its MANIFEST does not list,
// so a store whose MANIFEST is damaged would lose them before its seal
// could be checked. A missing MANIFEST beside tables or a value log is an
// error at once, and so is a table cut short (checkTable). The caller
// removes the links once the store has passed its seal.
func preOpen(dir string) (links string, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var tables []string
	data := false
	for _, e := range ents {
		switch filepath.Ext(e.Name()) {
		case ".sst":
			tables = append(tables, e.Name())
			data = true
		case ".vlog", ".mem":
			data = true
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); errors.Is(err, fs.ErrNotExist) && data {
		return "", fmt.Errorf("%w: %s has data files but no MANIFEST: opened, it would start empty and delete its tables. %s", ErrDamaged, dir, recovery)
	}
	for _, t := range tables {
		path := filepath.Join(dir, t)
		if err := checkTable(path); err != nil {
			return "", fmt.Errorf("%w: table %s: %v. %s", ErrDamaged, path, err, recovery)
		}
	}
	if len(tables) == 0 {
		return "", nil
	}
	links = filepath.Clean(dir) + ".preopen"
	if err := os.RemoveAll(links); err != nil {
		return "", err
	}
	if err := os.Mkdir(links, 0o700); err != nil {
		return "", err
	}
	for _, t := range tables {
		if err := os.Link(filepath.Join(dir, t), filepath.Join(links, t)); err != nil {
			os.RemoveAll(links)
			return "", nil // no hard links here: open without the safety net
		}
	}
	return links, nil
}

// checkTable reads the footer of a table (.sst) as Badger does when it
// opens one — checksum length, checksum, index length and index — and
// returns an error when the file is cut short or fails its checksum.
// Badger opens tables in goroutines of its own, where a truncated file
// panics beyond any recover; checked here first, it is an error instead.
func checkTable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	read := func(at, n int64) ([]byte, error) {
		if at < 0 || n < 0 || at+n > size {
			return nil, fmt.Errorf("cut short: %d bytes, its footer needs bytes [%d, %d)", size, at, at+n)
		}
		b := make([]byte, n)
		if _, err := f.ReadAt(b, at); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return b, nil
	}
	pos := size - 4
	b, err := read(pos, 4)
	if err != nil {
		return err
	}
	n := int64(binary.BigEndian.Uint32(b))
	pos -= n
	b, err = read(pos, n)
	if err != nil {
		return err
	}
	chk := &pb.Checksum{}
	if err := proto.Unmarshal(b, chk); err != nil {
		return fmt.Errorf("checksum: %v", err)
	}
	pos -= 4
	if b, err = read(pos, 4); err != nil {
		return err
	}
	n = int64(binary.BigEndian.Uint32(b))
	pos -= n
	if b, err = read(pos, n); err != nil {
		return err
	}
	if err := y.VerifyChecksum(b, chk); err != nil {
		return fmt.Errorf("index: %v", err)
	}
	return nil
}

// Reset moves the store in dir aside (to dir + ".broken-" + a UTC time)
// with its seal, so that the next Open starts an empty store, and returns
// where it went ("" when there was no store). Nothing is deleted.
func Reset(dir string) (aside string, err error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		os.Remove(SealPath(dir))
		return "", nil
	}
	aside = fmt.Sprintf("%s.broken-%s", filepath.Clean(dir), time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(dir, aside); err != nil {
		return "", fmt.Errorf("reset score store: %w", err)
	}
	if err := os.Rename(SealPath(dir), aside+".seal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return aside, fmt.Errorf("reset score store: %w", err)
	}
	return aside, nil
}
