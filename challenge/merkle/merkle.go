// Package merkle implements the binary Merkle tree of RFC 6962 (Certificate
// Transparency, section 2.1) over SHA-256: leaves are hashed as
// H(0x00 || data) and inner nodes as H(0x01 || left || right), so a leaf can
// never be passed off as an inner node. Trees of any size are supported; an
// unpaired last node is promoted unchanged to the next level, which gives
// the same root as RFC 6962's split at the largest power of two.
//
// The package is pure computation, with no I/O, and is fuzzed.
package merkle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// Hash is a SHA-256 digest.
type Hash = [32]byte

// Domain-separation prefixes (RFC 6962, section 2.1).
const (
	LeafPrefix  = 0x00
	InnerPrefix = 0x01
)

// Errors returned by Verify.
var (
	ErrIndex     = errors.New("merkle: leaf index out of range")
	ErrProofSize = errors.New("merkle: proof has the wrong number of hashes")
	ErrMismatch  = errors.New("merkle: proof does not lead to the root")
)

// LeafHash returns H(0x00 || data).
func LeafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{LeafPrefix})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// InnerHash returns H(0x01 || left || right).
func InnerHash(left, right Hash) Hash {
	var buf [65]byte
	buf[0] = InnerPrefix
	copy(buf[1:33], left[:])
	copy(buf[33:], right[:])
	return sha256.Sum256(buf[:])
}

// Tree holds every level of a Merkle tree, leaves first. Memory is about
// 2·n hashes for n leaves.
type Tree struct {
	levels [][]Hash
}

// parallelLevel is the level width from which New hashes on all cores.
const parallelLevel = 1 << 14

// New builds a tree over leaf hashes (already hashed with LeafHash). It
// returns an error for an empty leaf set.
func New(leaves []Hash) (*Tree, error) {
	if len(leaves) == 0 {
		return nil, errors.New("merkle: no leaves")
	}
	level := append([]Hash(nil), leaves...)
	t := &Tree{levels: [][]Hash{level}}
	for len(level) > 1 {
		next := make([]Hash, (len(level)+1)/2)
		pair := func(lo, hi int) {
			for i := lo; i < hi; i++ {
				if 2*i+1 < len(level) {
					next[i] = InnerHash(level[2*i], level[2*i+1])
				} else {
					next[i] = level[2*i]
				}
			}
		}
		// Wide levels (a streamed product has millions of rows) are
		// hashed on all cores.
		if w := runtime.GOMAXPROCS(0); len(next) >= parallelLevel && w > 1 {
			var wg sync.WaitGroup
			step := (len(next) + w - 1) / w
			for lo := 0; lo < len(next); lo += step {
				wg.Add(1)
				go func(lo, hi int) {
					defer wg.Done()
					pair(lo, hi)
				}(lo, min(lo+step, len(next)))
			}
			wg.Wait()
		} else {
			pair(0, len(next))
		}
		t.levels = append(t.levels, next)
		level = next
	}
	return t, nil
}

// Root returns the tree's root hash.
func (t *Tree) Root() Hash { return t.levels[len(t.levels)-1][0] }

// Size returns the number of leaves.
func (t *Tree) Size() int { return len(t.levels[0]) }

// Proof returns the inclusion proof (audit path) of leaf i: the sibling at
// each level where one exists, bottom up. Its length is at most
// ceil(log2(n)).
func (t *Tree) Proof(i int) ([]Hash, error) {
	if i < 0 || i >= t.Size() {
		return nil, fmt.Errorf("%w: %d of %d", ErrIndex, i, t.Size())
	}
	var proof []Hash
	for _, level := range t.levels[:len(t.levels)-1] {
		if sib := i ^ 1; sib < len(level) {
			proof = append(proof, level[sib])
		}
		i /= 2
	}
	return proof, nil
}

// Verify checks that leaf (a leaf hash) sits at index i of a tree of size
// leaves with the given root. It returns nil on success, or an error
// wrapping ErrIndex, ErrProofSize or ErrMismatch.
func Verify(root Hash, size, i int, leaf Hash, proof []Hash) error {
	h, err := RootFrom(size, i, leaf, proof)
	if err != nil {
		return err
	}
	if h != root {
		return ErrMismatch
	}
	return nil
}

// RootFrom returns the root of a tree of size leaves whose leaf i hashes
// to leaf, given i's inclusion proof: log₂(size) + 1 hashes. It returns an
// error wrapping ErrIndex or ErrProofSize when the proof does not fit.
func RootFrom(size, i int, leaf Hash, proof []Hash) (Hash, error) {
	if size <= 0 || i < 0 || i >= size {
		return Hash{}, fmt.Errorf("%w: %d of %d", ErrIndex, i, size)
	}
	h := leaf
	used := 0
	for n := size; n > 1; n = (n + 1) / 2 {
		switch {
		case i%2 == 1:
			if used >= len(proof) {
				return Hash{}, ErrProofSize
			}
			h = InnerHash(proof[used], h)
			used++
		case i+1 < n:
			if used >= len(proof) {
				return Hash{}, ErrProofSize
			}
			h = InnerHash(h, proof[used])
			used++
		}
		i /= 2
	}
	if used != len(proof) {
		return Hash{}, ErrProofSize
	}
	return h, nil
}
