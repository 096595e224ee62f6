package merkle

import (
	"errors"
	"fmt"
)

// Pruned is a Merkle tree without its lowest levels: it keeps the levels
// from height Skip up, and recomputes the subtree under a kept node from
// that node's leaves when a proof needs it. Memory is about 2·n/2^Skip
// hashes for n leaves (Skip 1: one hash per leaf, half a Tree), and a
// proof costs the 2^Skip leaf hashes of its span (Span) plus as many
// inner hashes.
type Pruned struct {
	skip   int
	size   int
	levels [][]Hash // levels[0] is the tree's level skip
}

// Prune returns t without its levels below height skip (fewer when the
// tree is lower than that: its root is always kept). The kept levels are
// shared with t, which is not changed; drop t to free the others.
func (t *Tree) Prune(skip int) *Pruned {
	skip = min(max(skip, 0), len(t.levels)-1)
	return &Pruned{skip: skip, size: t.Size(), levels: append([][]Hash(nil), t.levels[skip:]...)}
}

// NewPruned builds the tree over leaves and keeps it from height skip up
// (Tree.Prune); the leaves are not kept.
func NewPruned(leaves []Hash, skip int) (*Pruned, error) {
	t, err := New(leaves)
	if err != nil {
		return nil, err
	}
	return t.Prune(skip), nil
}

// Root returns the tree's root hash.
func (p *Pruned) Root() Hash { return p.levels[len(p.levels)-1][0] }

// Size returns the number of leaves.
func (p *Pruned) Size() int { return p.size }

// Skip returns the height of the lowest kept level.
func (p *Pruned) Skip() int { return p.skip }

// Bytes returns the memory the kept hashes take.
func (p *Pruned) Bytes() int {
	b := 0
	for _, l := range p.levels {
		b += len(l) * len(Hash{})
	}
	return b
}

// Span returns the leaves [lo, hi) whose hashes Proof needs to prove leaf
// i: the 2^Skip leaves (fewer at the end) under i's ancestor at height
// Skip.
func (p *Pruned) Span(i int) (lo, hi int) {
	lo = i >> p.skip << p.skip
	return lo, min(lo+1<<p.skip, p.size)
}

// ErrSpan is returned by Proof for leaf hashes that do not cover the
// leaf's span or do not lead to the kept tree.
var ErrSpan = errors.New("merkle: leaf hashes do not match the kept tree")

// Proof returns the inclusion proof of leaf i, the same as Tree.Proof,
// given span: the leaf hashes of Span(i), in order. It returns an error
// wrapping ErrIndex or ErrSpan.
func (p *Pruned) Proof(i int, span []Hash) ([]Hash, error) {
	if i < 0 || i >= p.size {
		return nil, fmt.Errorf("%w: %d of %d", ErrIndex, i, p.size)
	}
	lo, hi := p.Span(i)
	if len(span) != hi-lo {
		return nil, fmt.Errorf("%w: %d hashes for leaves [%d, %d)", ErrSpan, len(span), lo, hi)
	}
	// The subtree over the span has the same shape as that part of the
	// whole tree: lo is a multiple of 2^skip, so every level below skip
	// starts at an even index and an unpaired node is the same one.
	sub, err := New(span)
	if err != nil {
		return nil, err
	}
	if sub.Root() != p.levels[0][i>>p.skip] {
		return nil, fmt.Errorf("%w: leaf %d", ErrSpan, i)
	}
	var proof []Hash
	j := i - lo
	for _, level := range sub.levels[:len(sub.levels)-1] {
		if sib := j ^ 1; sib < len(level) {
			proof = append(proof, level[sib])
		}
		j /= 2
	}
	j = i >> p.skip
	for _, level := range p.levels[:len(p.levels)-1] {
		if sib := j ^ 1; sib < len(level) {
			proof = append(proof, level[sib])
		}
		j /= 2
	}
	return proof, nil
}
