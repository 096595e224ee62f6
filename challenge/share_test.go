package challenge

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/merkle"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// grindAgainst changes the last leaf of a tree whose leaves [honest, n)
// are made up until the rows SampleRows draws from the root, nonce and
// randomness are all computed ones, rehashing only that leaf's path; it
// returns the root and the number of tries, or ok false after limit.
func grindAgainst(t *testing.T, leaves []merkle.Hash, honest int, nonce, randomness []byte, openings, limit int, rng *rand.Rand) (root merkle.Hash, tries int, ok bool) {
	t.Helper()
	n := len(leaves)
	tree, err := merkle.New(leaves)
	if err != nil {
		t.Fatal(err)
	}
	path, err := tree.Proof(n - 1)
	if err != nil {
		t.Fatal(err)
	}
	row := make([]byte, 16)
	for tries = 1; tries <= limit; tries++ {
		for i := range row {
			row[i] = byte(rng.Uint32())
		}
		root, err = merkle.RootFrom(n, n-1, merkle.LeafHash(row), path)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := SampleRows(root, nonce, randomness, n, openings)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(idx, func(i int) bool { return i >= honest }) {
			return root, tries, true
		}
	}
	return root, limit, false
}

// TestLeakedSecretGrindingFails: a target that computed 90 % of 1,024
// rows and got its challenger's secret before committing grinds roots
// until the rows sampled from (root, nonce, secret) avoid the made-up
// ones — about 0.9⁻⁶⁶ ≈ 1,000 tries, and it finds one every time. Once
// the verifiers' shares, unknown to it before its root, are combined in
// (SamplingSecret), the same roots pass only at the honest 0.9⁶⁶ ≈ 0.1 %:
// every ground root is caught.
func TestLeakedSecretGrindingFails(t *testing.T) {
	const n, honest, openings, roots = 1024, 921, 66, 20
	rng := rand.New(rand.NewPCG(17, 9))
	leaves := make([]merkle.Hash, n)
	for i := range leaves {
		leaves[i] = merkle.LeafHash([]byte{byte(i), byte(i >> 8)})
	}
	random := func() []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	totalTries, caught := 0, 0
	for range roots {
		nonce, secret := random(), random()
		root, tries, ok := grindAgainst(t, leaves, honest, nonce, secret, openings, 50000, rng)
		if !ok {
			t.Fatalf("grinding against the leaked secret alone found no root in %d tries", tries)
		}
		totalTries += tries
		// Three verifiers' shares, drawn after the root was fixed.
		randomness := SamplingSecret(secret, [][]byte{random(), random(), random()})
		idx, err := SampleRows(root, nonce, randomness, n, openings)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(idx, func(i int) bool { return i >= honest }) {
			caught++
		}
	}
	t.Logf("leaked secret alone: %d roots ground in %.0f tries each on average; with verifier shares %d of %d caught", roots, float64(totalTries)/roots, caught, roots)
	if caught < roots-1 { // each escapes with probability 0.9^66 ≈ 0.1 %
		t.Fatalf("with verifier shares only %d of %d ground roots caught", caught, roots)
	}
}

// TestSamplingSecret: shares change the sampled randomness, in their
// order; none leaves the challenger's secret as it is.
func TestSamplingSecret(t *testing.T) {
	a, b := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	if !bytes.Equal(SamplingSecret(testSecret, nil), testSecret) {
		t.Fatal("no shares should leave the secret as it is")
	}
	ab, ba := SamplingSecret(testSecret, [][]byte{a, b}), SamplingSecret(testSecret, [][]byte{b, a})
	if bytes.Equal(ab, ba) || bytes.Equal(ab, testSecret) || len(ab) != 32 {
		t.Fatal("shares must change the randomness, in order")
	}
}

// TestCommitmentShares: a commitment may list only shares signed by their
// verifiers for its own challenge, each verifier once, none the prover's.
func TestCommitmentShares(t *testing.T) {
	now := testClock.Start(5)
	key, prover := newKeyPeer(t)
	vkey, verifier := newKeyPeer(t)
	okey, _ := newKeyPeer(t)
	_, _, chCID := newChallenge(t, newPeer(t), prover, now)
	_, _, otherCID := newChallenge(t, newPeer(t), prover, now)
	share := func(signer []byte, chBytes []byte) *pb.Share {
		s := &pb.Share{ChallengeCid: chBytes, Verifier: signer, Hash: ShareHash(bytes.Repeat([]byte{3}, 32))}
		if err := SignShare(vkey, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := share([]byte(verifier), chCID.Bytes())
	forged := &pb.Share{ChallengeCid: chCID.Bytes(), Verifier: []byte(verifier), Hash: good.GetHash()}
	if err := SignShare(okey, forged); err != nil {
		t.Fatal(err)
	}
	proverShare := &pb.Share{ChallengeCid: chCID.Bytes(), Verifier: []byte(prover), Hash: good.GetHash()}
	if err := SignShare(key, proverShare); err != nil {
		t.Fatal(err)
	}
	tooMany := make([]*pb.Share, MaxShares+1)
	for i := range tooMany {
		k, id := newKeyPeer(t)
		tooMany[i] = &pb.Share{ChallengeCid: chCID.Bytes(), Verifier: []byte(id), Hash: good.GetHash()}
		if err := SignShare(k, tooMany[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		shares []*pb.Share
		ok     bool
	}{
		{"no shares", nil, true},
		{"a verifier's signed share", []*pb.Share{good}, true},
		{"a share signed by another key", []*pb.Share{forged}, false},
		{"a share for another challenge", []*pb.Share{share([]byte(verifier), otherCID.Bytes())}, false},
		{"one verifier twice", []*pb.Share{good, good}, false},
		{"the prover's own share", []*pb.Share{proverShare}, false},
		{"too many shares", tooMany, false},
	} {
		com := testCommitment(t, prover, chCID.Bytes())
		com.Shares = tc.shares
		if _, err := SignCommitment(key, com); err != nil {
			t.Fatal(err)
		}
		b, _ := Marshal(com)
		_, _, err := NewValidator(DefaultLimits(), testClock, 16).Commitment(prover, b, now)
		if (err == nil) != tc.ok {
			t.Fatalf("%s: err %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// TestShareReveal: a verifier's share commitment travels alone, signed by
// its verifier; its share reveal must match the hash and carry a
// commitment that lists the share.
func TestShareReveal(t *testing.T) {
	now := testClock.Start(5)
	key, prover := newKeyPeer(t)
	vkey, verifier := newKeyPeer(t)
	_, _, chCID := newChallenge(t, newPeer(t), prover, now)
	s := bytes.Repeat([]byte{4}, 32)
	sh := &pb.Share{ChallengeCid: chCID.Bytes(), Verifier: []byte(verifier), Hash: ShareHash(s)}
	if err := SignShare(vkey, sh); err != nil {
		t.Fatal(err)
	}
	listing := testCommitment(t, prover, chCID.Bytes())
	listing.Shares = []*pb.Share{sh}
	if _, err := SignCommitment(key, listing); err != nil {
		t.Fatal(err)
	}
	listingBytes, _ := Marshal(listing)
	bare := testCommitment(t, prover, chCID.Bytes())
	if _, err := SignCommitment(key, bare); err != nil {
		t.Fatal(err)
	}
	bareBytes, _ := Marshal(bare)
	for _, tc := range []struct {
		name string
		r    *pb.Reveal
		from []byte
		ok   bool
	}{
		{"a share commitment", &pb.Reveal{ChallengeCid: chCID.Bytes(), Share: sh}, []byte(verifier), true},
		{"a share commitment from another peer", &pb.Reveal{ChallengeCid: chCID.Bytes(), Share: sh}, []byte(prover), false},
		{"a share commitment naming a challenger", &pb.Reveal{ChallengeCid: chCID.Bytes(), Challenger: []byte(verifier), Share: sh}, []byte(verifier), false},
		{"a share commitment with a commitment", &pb.Reveal{ChallengeCid: chCID.Bytes(), Share: sh, Commitment: listingBytes}, []byte(verifier), false},
		{"a share reveal", &pb.Reveal{ChallengeCid: chCID.Bytes(), Share: sh, Secret: s, Commitment: listingBytes}, []byte(verifier), true},
		{"a share reveal of another share", &pb.Reveal{ChallengeCid: chCID.Bytes(), Share: sh, Secret: testSecret, Commitment: listingBytes}, []byte(verifier), false},
		{"a share reveal with a commitment not listing it", &pb.Reveal{ChallengeCid: chCID.Bytes(), Share: sh, Secret: s, Commitment: bareBytes}, []byte(verifier), false},
		{"a share reveal with no commitment", &pb.Reveal{ChallengeCid: chCID.Bytes(), Share: sh, Secret: s}, []byte(verifier), false},
	} {
		b, err := Marshal(tc.r)
		if err != nil {
			t.Fatal(err)
		}
		from, _ := peer.IDFromBytes(tc.from)
		_, _, err = NewValidator(DefaultLimits(), testClock, 16).Reveal(from, b, now)
		if (err == nil) != tc.ok {
			t.Fatalf("%s: err %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// TestVerifyWithShares: an honest proof opened under the challenger's
// secret and the listed verifiers' shares passes; without the shares, or
// with a wrong one, verification refuses it.
func TestVerifyWithShares(t *testing.T) {
	now := testClock.Start(5)
	key, prover := newKeyPeer(t)
	vkey, verifier := newKeyPeer(t)
	ch, _, chCID := newChallenge(t, newPeer(t), prover, now)
	s := bytes.Repeat([]byte{5}, 32)
	sh := &pb.Share{ChallengeCid: chCID.Bytes(), Verifier: []byte(verifier), Hash: ShareHash(s)}
	if err := SignShare(vkey, sh); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := Run(ctx, gpu.NewCPU(), ch, chCID, prover)
	if err != nil {
		t.Fatal(err)
	}
	c.Commitment.Shares = []*pb.Share{sh}
	if err := c.Sign(key); err != nil {
		t.Fatal(err)
	}
	op, err := c.Open(context.Background(), ch, testSecret, s)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(ctx, gpu.NewCPU(), ch, chCID, c.Commitment, c.CommitmentCID, op, testSecret, s)
	if err != nil || res.Verdict != pb.Verdict_VERDICT_PASS {
		t.Fatalf("honest proof with shares: %v %v", res, err)
	}
	if _, err := Verify(ctx, gpu.NewCPU(), ch, chCID, c.Commitment, c.CommitmentCID, op, testSecret); !errors.Is(err, ErrMalformed) {
		t.Fatalf("verified without the listed share: %v", err)
	}
	if _, err := Verify(ctx, gpu.NewCPU(), ch, chCID, c.Commitment, c.CommitmentCID, op, testSecret, testSecret); !errors.Is(err, ErrMalformed) {
		t.Fatalf("verified with a wrong share: %v", err)
	}
}
