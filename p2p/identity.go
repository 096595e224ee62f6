package p2p

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/poai-network/poai/internal/atomicfile"
)

// LoadOrCreateKey returns the Ed25519 private key stored at path (libp2p's
// protobuf key encoding), creating it with mode 0600 if the file does not
// exist. The peer ID is derived from this key, so keeping the file keeps the
// identity. A file that exists but does not hold a valid key is an error,
// never silently replaced: a key that decodes but cannot sign (bytes
// overwritten inside it) is refused too, see CheckKey.
func LoadOrCreateKey(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(b)
		if err == nil {
			err = CheckKey(k)
		}
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w; restore this file from a backup, or move it away to have a new identity made (a new identity has a new peer ID)", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("identity dir: %w", err)
	}
	// Written through a fresh temporary file and renamed: a crash never
	// leaves a truncated key, and no link planted beside it is followed.
	if err := atomicfile.Write(path, b); err != nil {
		return nil, fmt.Errorf("write identity: %w", err)
	}
	return k, nil
}

// CheckKeyFile checks, before a node that must keep its identity starts,
// that path holds an identity key file: it errors when the file is missing
// or a link to nothing (the node would otherwise make a new key, a new
// peer ID, and lose its reputation; only `poai init` creates one), and
// returns a warning when others may read it (mode beyond 0600).
func CheckKeyFile(path string) (warnings []string, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if li, lerr := os.Lstat(path); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(path)
			return nil, fmt.Errorf("identity %s is a link to %s, which does not exist: restore the key there, or run 'poai init' for a new identity (a new peer ID)", path, target)
		}
		return nil, fmt.Errorf("no identity key at %s: run 'poai init --data-dir %s' to create one (run never creates a key: a new key is a new peer ID, and the old one's reputation is lost)", path, filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity %s: not a regular file (%v)", path, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		warnings = append(warnings, fmt.Sprintf("identity %s has mode %04o: others may read the key; chmod 600 it", path, fi.Mode().Perm()))
	}
	return warnings, nil
}

// keyCheckMessage is what CheckKey signs.
var keyCheckMessage = []byte("poai identity key check")

// CheckKey reports whether k can sign messages its own public key verifies.
// An Ed25519 key as libp2p stores it holds seed || public key; a byte
// overwritten in the seed leaves a key that decodes, but whose signatures
// every peer (and the node's own validators) reject. So the public key
// derived from the seed must equal the stored one, and a test signature
// must verify.
func CheckKey(k crypto.PrivKey) error {
	if k.Type() == crypto.Ed25519 {
		raw, err := k.Raw()
		if err != nil {
			return err
		}
		if len(raw) != ed25519.PrivateKeySize {
			return fmt.Errorf("ed25519 key of %d bytes, want %d", len(raw), ed25519.PrivateKeySize)
		}
		derived := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize]).Public().(ed25519.PublicKey)
		if !bytes.Equal(derived, raw[ed25519.SeedSize:]) {
			return errors.New("damaged key: the public key derived from the private seed differs from the stored public key")
		}
	}
	sig, err := k.Sign(keyCheckMessage)
	if err != nil {
		return fmt.Errorf("damaged key: cannot sign: %w", err)
	}
	ok, err := k.GetPublic().Verify(keyCheckMessage, sig)
	if err != nil || !ok {
		return fmt.Errorf("damaged key: its public key does not verify its own signature (%v)", err)
	}
	return nil
}
