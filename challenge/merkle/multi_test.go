package merkle

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMultiProof: for trees of every size up to 300 and random index
// sets, the multi-proof gives the root, is no longer than the separate
// proofs together, and fails for a changed leaf, a changed or missing
// proof hash, or one too many.
func TestMultiProof(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for size := 1; size <= 300; size++ {
		leaves := make([]Hash, size)
		for i := range leaves {
			leaves[i] = LeafHash([]byte{byte(i), byte(i >> 8)})
		}
		tree, err := New(leaves)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			k := 1 + rng.IntN(size)
			idx := rng.Perm(size)[:k]
			if rng.IntN(2) == 0 { // a contiguous range
				lo := rng.IntN(size - k + 1)
				for j := range idx {
					idx[j] = lo + j
				}
			}
			slices.Sort(idx)
			proof, err := tree.MultiProof(idx)
			if err != nil {
				t.Fatal(err)
			}
			opened := make([]Hash, k)
			separate := 0
			for j, i := range idx {
				opened[j] = leaves[i]
				p, _ := tree.Proof(i)
				separate += len(p)
			}
			if err := VerifyMulti(tree.Root(), size, idx, opened, proof); err != nil {
				t.Fatalf("size %d, %v: %v", size, idx, err)
			}
			if len(proof) > separate {
				t.Fatalf("size %d: multi-proof of %d hashes, separate proofs %d", size, len(proof), separate)
			}
			opened[rng.IntN(k)][0] ^= 1
			if err := VerifyMulti(tree.Root(), size, idx, opened, proof); !errors.Is(err, ErrMismatch) {
				t.Fatalf("size %d: a changed leaf: %v", size, err)
			}
			opened = nil
			for _, i := range idx {
				opened = append(opened, leaves[i])
			}
			if len(proof) > 0 {
				bad := slices.Clone(proof)
				bad[rng.IntN(len(bad))][3] ^= 1
				if err := VerifyMulti(tree.Root(), size, idx, opened, bad); !errors.Is(err, ErrMismatch) {
					t.Fatalf("size %d: a changed proof hash: %v", size, err)
				}
				if err := VerifyMulti(tree.Root(), size, idx, opened, proof[1:]); err == nil {
					t.Fatalf("size %d: a proof hash missing passed", size)
				}
			}
			if err := VerifyMulti(tree.Root(), size, idx, opened, append(slices.Clone(proof), Hash{})); !errors.Is(err, ErrProofSize) {
				t.Fatalf("size %d: a proof hash too many: %v", size, err)
			}
		}
	}
	if _, err := RootFromMulti(4, []int{2, 1}, make([]Hash, 2), nil); !errors.Is(err, ErrIndex) {
		t.Fatalf("unsorted indices: %v", err)
	}
}
