package scoring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	badger "github.com/dgraph-io/badger/v4"
)

// Backup writes a full backup of the store in dir to w (Badger's backup
// stream: every live key, protobuf-framed) and returns the number of peer
// records it holds. The store must not be open elsewhere (a running node
// holds its lock): stop the node first. A damaged store is refused as by
// Open.
func Backup(ctx context.Context, dir string, w io.Writer) (peers int, err error) {
	b, err := Open(ctx, dir, "", DefaultParams(), nil)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	if _, err := b.db.Backup(w, 0); err != nil {
		return 0, fmt.Errorf("backup score store %s: %w", dir, err)
	}
	return len(b.Peers()), nil
}

// Restore loads a backup made by Backup into dir, which must not hold a
// store (move a damaged one aside first: Reset), and seals it. It returns
// the number of peer records restored.
func Restore(ctx context.Context, dir string, r io.Reader) (peers int, err error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return 0, fmt.Errorf("restore score store: %s is not empty: move the store there aside first (poai run --reset-store does) or name an empty directory", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	if _, err := os.Stat(SealPath(dir)); err == nil {
		return 0, fmt.Errorf("restore score store: a seal %s remains from an earlier store: remove it", SealPath(dir))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		return 0, fmt.Errorf("restore score store %s: %w", dir, err)
	}
	if err := db.Load(r, 256); err != nil {
		db.Close()
		return 0, fmt.Errorf("restore score store %s: %w", dir, err)
	}
	if err := db.Close(); err != nil {
		return 0, err
	}
	b, err := Open(ctx, dir, "", DefaultParams(), nil)
	if err != nil {
		return 0, err
	}
	peers = len(b.Peers())
	return peers, b.Close() // Close seals it
}
