package merkle

import (
	"errors"
	"fmt"
	"testing"
)

func leaves(n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		out[i] = LeafHash([]byte(fmt.Sprintf("leaf %d", i)))
	}
	return out
}

// rfc6962Root is the recursive definition of RFC 6962 section 2.1, used as
// an independent check of the level-by-level construction.
func rfc6962Root(l []Hash) Hash {
	if len(l) == 1 {
		return l[0]
	}
	k := 1
	for k*2 < len(l) {
		k *= 2
	}
	return InnerHash(rfc6962Root(l[:k]), rfc6962Root(l[k:]))
}

func TestRootMatchesRFC6962(t *testing.T) {
	for n := 1; n <= 70; n++ {
		l := leaves(n)
		tr, err := New(l)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Root() != rfc6962Root(l) {
			t.Fatalf("n=%d: root differs from the RFC 6962 definition", n)
		}
	}
}

func TestProofs(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8, 13, 64, 100} {
		l := leaves(n)
		tr, _ := New(l)
		for i := 0; i < n; i++ {
			p, err := tr.Proof(i)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(tr.Root(), n, i, l[i], p); err != nil {
				t.Fatalf("n=%d i=%d: valid proof rejected: %v", n, i, err)
			}
		}
	}
}

func TestProofRejections(t *testing.T) {
	const n = 13
	l := leaves(n)
	tr, _ := New(l)
	root := tr.Root()
	p, _ := tr.Proof(6)

	t.Run("tampered leaf", func(t *testing.T) {
		bad := l[6]
		bad[0] ^= 1
		if err := Verify(root, n, 6, bad, p); !errors.Is(err, ErrMismatch) {
			t.Fatalf("got %v, want ErrMismatch", err)
		}
	})
	t.Run("tampered path", func(t *testing.T) {
		for k := range p {
			bad := append([]Hash(nil), p...)
			bad[k][31] ^= 0x80
			if err := Verify(root, n, 6, l[6], bad); !errors.Is(err, ErrMismatch) {
				t.Fatalf("hash %d tampered: got %v, want ErrMismatch", k, err)
			}
		}
	})
	t.Run("wrong index", func(t *testing.T) {
		if err := Verify(root, n, 7, l[6], p); err == nil {
			t.Fatal("proof accepted at the wrong index")
		}
		if err := Verify(root, n, n, l[6], p); !errors.Is(err, ErrIndex) {
			t.Fatalf("got %v, want ErrIndex", err)
		}
	})
	t.Run("short and long proof", func(t *testing.T) {
		if err := Verify(root, n, 6, l[6], p[:len(p)-1]); !errors.Is(err, ErrProofSize) {
			t.Fatalf("short: got %v", err)
		}
		if err := Verify(root, n, 6, l[6], append(p, p[0])); !errors.Is(err, ErrProofSize) {
			t.Fatalf("long: got %v", err)
		}
	})
	t.Run("leaf as inner node", func(t *testing.T) {
		// A second-preimage attempt: present an inner node as a leaf of a
		// smaller tree. Domain separation makes the roots differ.
		data := append(append([]byte(nil), l[0][:]...), l[1][:]...)
		small, _ := New([]Hash{LeafHash(data)})
		if small.Root() == rfc6962Root(l[:2]) {
			t.Fatal("inner node usable as a leaf")
		}
	})
}

func FuzzVerify(f *testing.F) {
	f.Add(5, 3, []byte("x"), []byte{})
	f.Fuzz(func(t *testing.T, size, i int, leaf []byte, proofBytes []byte) {
		var proof []Hash
		for len(proofBytes) >= 32 {
			var h Hash
			copy(h[:], proofBytes)
			proof = append(proof, h)
			proofBytes = proofBytes[32:]
		}
		if size > 1<<20 {
			size = 1 << 20
		}
		// Must never panic; a random proof must not verify against a
		// root it was not built from.
		var root Hash
		if Verify(root, size, i, LeafHash(leaf), proof) == nil {
			t.Fatal("random proof verified against a zero root")
		}
	})
}

func BenchmarkTree4096(b *testing.B) {
	l := leaves(4096)
	for b.Loop() {
		if _, err := New(l); err != nil {
			b.Fatal(err)
		}
	}
}
