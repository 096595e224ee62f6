package challenge

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/pb"
)

func newKeyPeer(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

func testCommitment(t *testing.T, prover peer.ID, chBytes []byte) *pb.Commitment {
	t.Helper()
	root := make([]byte, 32)
	rand.Read(root)
	return &pb.Commitment{ChallengeCid: chBytes, Prover: []byte(prover), MerkleRoot: root, Leaves: 96}
}

// TestCommitmentSignature: a commitment is accepted only with its
// prover's signature, from the prover or from a peer forwarding it; an
// unsigned, re-signed or altered one is rejected.
func TestCommitmentSignature(t *testing.T) {
	now := testClock.Start(5)
	key, prover := newKeyPeer(t)
	otherKey, forwarder := newKeyPeer(t)
	_, _, chCID := newChallenge(t, newPeer(t), prover, now)

	unsigned := testCommitment(t, prover, chCID.Bytes())
	b, _ := Marshal(unsigned)
	if _, _, err := NewValidator(DefaultLimits(), testClock, 16).Commitment(prover, b, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("unsigned commitment: %v, want ErrBadSignature", err)
	}

	signed := testCommitment(t, prover, chCID.Bytes())
	signedCID, err := SignCommitment(key, signed)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = Marshal(signed)
	for _, from := range []peer.ID{prover, forwarder} {
		m, c, err := NewValidator(DefaultLimits(), testClock, 16).Commitment(from, b, now)
		if err != nil {
			t.Fatalf("signed commitment delivered by %s: %v", from, err)
		}
		if !c.Equals(signedCID) || string(m.GetSignature()) != string(signed.GetSignature()) {
			t.Fatal("accepted commitment differs from the one signed")
		}
	}

	forged := testCommitment(t, prover, chCID.Bytes())
	if _, err := SignCommitment(otherKey, forged); err != nil {
		t.Fatal(err)
	}
	b, _ = Marshal(forged)
	if _, _, err := NewValidator(DefaultLimits(), testClock, 16).Commitment(forwarder, b, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("commitment signed by another key: %v, want ErrBadSignature", err)
	}

	altered := testCommitment(t, prover, chCID.Bytes())
	if _, err := SignCommitment(key, altered); err != nil {
		t.Fatal(err)
	}
	altered.MerkleRoot[0] ^= 1 // a second root under the first one's signature
	b, _ = Marshal(altered)
	if _, _, err := NewValidator(DefaultLimits(), testClock, 16).Commitment(prover, b, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered commitment: %v, want ErrBadSignature", err)
	}
}

// TestRevealNamesCommitment: a reveal must carry the target's signed
// commitment to its own challenge; the node then holds the root the
// challenger opened.
func TestRevealNamesCommitment(t *testing.T) {
	now := testClock.Start(5)
	key, prover := newKeyPeer(t)
	challenger := newPeer(t)
	_, _, chCID := newChallenge(t, challenger, prover, now)
	_, _, otherCID := newChallenge(t, challenger, prover, now)
	secret := make([]byte, 32)

	com := testCommitment(t, prover, chCID.Bytes())
	comCID, err := SignCommitment(key, com)
	if err != nil {
		t.Fatal(err)
	}
	comBytes, _ := Marshal(com)
	other := testCommitment(t, prover, otherCID.Bytes())
	if _, err := SignCommitment(key, other); err != nil {
		t.Fatal(err)
	}
	otherBytes, _ := Marshal(other)
	unsigned := testCommitment(t, prover, chCID.Bytes())
	unsignedBytes, _ := Marshal(unsigned)

	for _, tc := range []struct {
		name string
		com  []byte
		ok   bool
	}{
		{"the target's signed commitment", comBytes, true},
		{"no commitment", nil, false},
		{"a commitment to another challenge", otherBytes, false},
		{"an unsigned commitment", unsignedBytes, false},
	} {
		r := &pb.Reveal{ChallengeCid: chCID.Bytes(), Challenger: []byte(challenger), Secret: secret, Commitment: tc.com}
		b, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := NewValidator(DefaultLimits(), testClock, 16).Reveal(challenger, b, now)
		if (err == nil) != tc.ok {
			t.Fatalf("%s: err %v, want ok %v", tc.name, err, tc.ok)
		}
		if !tc.ok {
			continue
		}
		rc, err := RevealedCommitment(m)
		if err != nil || !rc.CID.Equals(comCID) {
			t.Fatalf("%s: revealed commitment %v (%v), want %v", tc.name, rc.CID, err, comCID)
		}
	}
}

// TestSelfRequestRejected: a peer may ask for a challenge of another peer,
// never of itself (it would choose when it is tested).
func TestSelfRequestRejected(t *testing.T) {
	now := testClock.Start(5)
	a, b := newPeer(t), newPeer(t)
	for _, tc := range []struct {
		requester, target peer.ID
		want              error
	}{{a, b, nil}, {a, a, ErrSelfRequest}} {
		m := &pb.ChallengeRequest{Target: []byte(tc.target), Requester: []byte(tc.requester), IssuedUnixMs: now.UnixMilli()}
		data, _ := Marshal(m)
		_, _, err := NewValidator(DefaultLimits(), testClock, 16).ChallengeRequest(tc.requester, data, now)
		if !errors.Is(err, tc.want) && (tc.want != nil || err != nil) {
			t.Fatalf("request by %s of %s: %v, want %v", tc.requester, tc.target, err, tc.want)
		}
	}
}
