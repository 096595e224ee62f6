package merkle

import (
	"fmt"
	"slices"
)

// MultiProof returns one proof for the leaves at indices idx (sorted,
// distinct): the siblings, level by level and bottom up, of the nodes on
// their paths that the leaves themselves do not give, each level's in
// index order. Opening k leaves of a range costs about log₂(n) hashes in
// all instead of k·log₂(n).
func (t *Tree) MultiProof(idx []int) ([]Hash, error) {
	if err := checkIndices(idx, t.Size()); err != nil {
		return nil, err
	}
	var proof []Hash
	known := slices.Clone(idx)
	for _, level := range t.levels[:len(t.levels)-1] {
		next := known[:0:0]
		for j, i := range known {
			switch {
			case i%2 == 0 && i+1 < len(level):
				if j+1 >= len(known) || known[j+1] != i+1 {
					proof = append(proof, level[i+1])
				}
			case i%2 == 1:
				if j == 0 || known[j-1] != i-1 {
					proof = append(proof, level[i-1])
				}
			}
			if len(next) == 0 || next[len(next)-1] != i/2 {
				next = append(next, i/2)
			}
		}
		known = next
	}
	return proof, nil
}

// RootFromMulti returns the root of a tree of size leaves whose leaves at
// idx (sorted, distinct) hash to leaves, given their MultiProof. It
// returns an error wrapping ErrIndex or ErrProofSize when the proof does
// not fit: too short, or hashes left over.
func RootFromMulti(size int, idx []int, leaves, proof []Hash) (Hash, error) {
	if err := checkIndices(idx, size); err != nil {
		return Hash{}, err
	}
	if len(leaves) != len(idx) {
		return Hash{}, fmt.Errorf("%w: %d leaves for %d indices", ErrProofSize, len(leaves), len(idx))
	}
	known, hashes := slices.Clone(idx), slices.Clone(leaves)
	used := 0
	take := func() (Hash, bool) {
		if used >= len(proof) {
			return Hash{}, false
		}
		used++
		return proof[used-1], true
	}
	for n := size; n > 1; n = (n + 1) / 2 {
		var nextIdx []int
		var nextHash []Hash
		for j := 0; j < len(known); j++ {
			i, h := known[j], hashes[j]
			switch {
			case i%2 == 0 && i+1 < n:
				sib, ok := Hash{}, true
				if j+1 < len(known) && known[j+1] == i+1 {
					sib = hashes[j+1]
					j++
				} else if sib, ok = take(); !ok {
					return Hash{}, ErrProofSize
				}
				h = InnerHash(h, sib)
			case i%2 == 1:
				sib, ok := take()
				if !ok {
					return Hash{}, ErrProofSize
				}
				h = InnerHash(sib, h)
			}
			nextIdx, nextHash = append(nextIdx, i/2), append(nextHash, h)
		}
		known, hashes = nextIdx, nextHash
	}
	if used != len(proof) {
		return Hash{}, fmt.Errorf("%w: %d proof hashes left over", ErrProofSize, len(proof)-used)
	}
	return hashes[0], nil
}

// VerifyMulti checks leaves at idx against root with their MultiProof.
func VerifyMulti(root Hash, size int, idx []int, leaves, proof []Hash) error {
	h, err := RootFromMulti(size, idx, leaves, proof)
	if err != nil {
		return err
	}
	if h != root {
		return ErrMismatch
	}
	return nil
}

// checkIndices returns an error wrapping ErrIndex unless idx is a
// non-empty, strictly increasing list of indices below size.
func checkIndices(idx []int, size int) error {
	if len(idx) == 0 || size <= 0 {
		return fmt.Errorf("%w: no indices, or an empty tree", ErrIndex)
	}
	for j, i := range idx {
		if i < 0 || i >= size || (j > 0 && i <= idx[j-1]) {
			return fmt.Errorf("%w: indices must be increasing and below %d (%d at %d)", ErrIndex, size, i, j)
		}
	}
	return nil
}
