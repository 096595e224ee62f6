package challenge

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// Domain-separation tags for the hashes this package derives.
const (
	seedTag = "poai/1/seed"
	fsTag   = "poai/1/fiat-shamir"
	// columnsTag separates SampleColumns' stream from SampleRows'.
	columnsTag = "poai/1/columns"
	// checkColumnsTag separates CheckColumnsOf's stream.
	checkColumnsTag = "poai/1/check-cols"
	revealTag       = "poai/1/reveal"
)

// Seed derives the workload seed of a challenge: SHA-256(tag || the
// challenge's canonical encoding). Every field counts — challenger,
// target, nonce, epoch, timestamp, workload — so the seed is bound to the
// target's peer ID, unpredictable until the challenger reveals its random
// nonce, and different for any two distinct challenges, even ones that
// reuse a nonce.
func Seed(ch *pb.Challenge) gpu.Seed {
	b, err := Marshal(ch)
	if err != nil {
		// Deterministic marshalling of a generated message cannot fail.
		panic(fmt.Sprintf("challenge: marshal for seed: %v", err))
	}
	h := sha256.New()
	h.Write([]byte(seedTag))
	h.Write(b)
	var s gpu.Seed
	h.Sum(s[:0])
	return s
}

// writeField writes a length-prefixed field so that field boundaries cannot
// be shifted between adjacent fields.
func writeField(h interface{ Write([]byte) (int, error) }, b []byte) {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(b)))
	h.Write(l[:])
	h.Write(b)
}

// RevealHash returns SHA-256(tag || secret), the commitment to a
// challenger's opening secret carried in the challenge.
func RevealHash(secret []byte) []byte {
	h := sha256.Sum256(append([]byte(revealTag), secret...))
	return h[:]
}

// SampleRows returns count distinct leaf indices in [0, n), drawn from the
// Merkle root, the challenge nonce and the challenger's revealed secret: a
// stream of SHA-256(tag || root || nonce || secret || counter) words,
// rejection-sampled so every index is uniform. The root fixes every leaf
// before the indices exist, and the secret, revealed only after the
// commitment, keeps the prover from grinding its root against them. It
// returns an error if count > n or n ≤ 0.
func SampleRows(root merkle.Hash, nonce, secret []byte, n, count int) ([]int, error) {
	return sample(fsTag, root, nonce, secret, n, count)
}

// SampleColumns returns the count distinct columns in [0, m) at which
// every verifier checks a GEMM challenge's opened rows (CheckedColumns
// gives count): SampleRows' stream under the tag "poai/1/columns", from
// the same root, nonce and sampling randomness. Like the rows, the columns
// exist only once the commitment is fixed and the secret and shares are
// revealed, and every verifier checks the same ones, so honest verifiers
// agree on a verdict.
func SampleColumns(root merkle.Hash, nonce, secret []byte, m, count int) ([]int, error) {
	return sample(columnsTag, root, nonce, secret, m, count)
}

func sample(tag string, root merkle.Hash, nonce, secret []byte, n, count int) ([]int, error) {
	if n <= 0 || count < 0 || count > n {
		return nil, fmt.Errorf("%w: cannot sample %d of %d", ErrMalformed, count, n)
	}
	limit := (uint64(1<<63) / uint64(n)) * uint64(n) // reject above to avoid modulo bias
	seen := make(map[int]bool, count)
	out := make([]int, 0, count)
	var ctr uint64
	for len(out) < count {
		h := sha256.New()
		h.Write([]byte(tag))
		h.Write(root[:])
		writeField(h, nonce)
		writeField(h, secret)
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], ctr)
		h.Write(c[:])
		ctr++
		sum := h.Sum(nil)
		for w := 0; w < 4 && len(out) < count; w++ {
			v := binary.BigEndian.Uint64(sum[8*w:]) >> 1
			if v >= limit {
				continue
			}
			i := int(v % uint64(n))
			if !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	return out, nil
}
