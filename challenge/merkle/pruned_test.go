package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func testLeaves(n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		out[i] = LeafHash(b[:])
	}
	return out
}

// TestPrunedProofs checks that a pruned tree gives the same root and
// proofs as the whole tree, for every leaf of trees of many sizes (odd
// ends included) and every skip.
func TestPrunedProofs(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 33, 100, 257} {
		leaves := testLeaves(n)
		tree, err := New(leaves)
		if err != nil {
			t.Fatal(err)
		}
		for skip := 0; skip <= 10; skip++ {
			p := tree.Prune(skip)
			if p.Root() != tree.Root() || p.Size() != n {
				t.Fatalf("n=%d skip=%d: root or size differs", n, skip)
			}
			for i := range n {
				lo, hi := p.Span(i)
				got, err := p.Proof(i, leaves[lo:hi])
				if err != nil {
					t.Fatalf("n=%d skip=%d i=%d: %v", n, skip, i, err)
				}
				want, _ := tree.Proof(i)
				if !slices.Equal(got, want) {
					t.Fatalf("n=%d skip=%d i=%d: proof differs", n, skip, i)
				}
				if err := Verify(tree.Root(), n, i, leaves[i], got); err != nil {
					t.Fatalf("n=%d skip=%d i=%d: %v", n, skip, i, err)
				}
			}
		}
	}
}

func TestPrunedRejectsWrongSpan(t *testing.T) {
	leaves := testLeaves(40)
	p, err := NewPruned(leaves, 3)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := p.Span(10)
	bad := slices.Clone(leaves[lo:hi])
	bad[0] = sha256.Sum256([]byte("x"))
	if _, err := p.Proof(10, bad); !errors.Is(err, ErrSpan) {
		t.Fatalf("wrong leaf: %v", err)
	}
	if _, err := p.Proof(10, leaves[lo:hi-1]); !errors.Is(err, ErrSpan) {
		t.Fatalf("short span: %v", err)
	}
	if _, err := p.Proof(40, nil); !errors.Is(err, ErrIndex) {
		t.Fatalf("index: %v", err)
	}
}

// TestPrunedBytes checks the memory of a pruned tree: about n/2^(skip-1)
// hashes.
func TestPrunedBytes(t *testing.T) {
	n := 1 << 12
	p, err := NewPruned(testLeaves(n), 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Bytes(), (n-1)*32; got != want {
		t.Fatalf("skip 1: %d bytes, want %d", got, want)
	}
}
