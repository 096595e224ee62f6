package challenge

import (
	"crypto/sha256"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/poai-network/poai/challenge/pb"
)

// Domain-separation tags of the verifiers' shares.
const (
	shareTag    = "poai/1/share"
	samplingTag = "poai/1/sampling"
)

// MaxShares bounds the verifier shares a commitment lists.
const MaxShares = 16

// ShareHash returns SHA-256("poai/1/share" ‖ s), a verifier's commitment
// to its share s.
func ShareHash(s []byte) []byte {
	h := sha256.Sum256(append([]byte(shareTag), s...))
	return h[:]
}

// SamplingSecret combines the challenger's secret with the verifiers'
// shares, in the order the commitment lists them, into the randomness
// SampleRows draws the opened leaves from: SHA-256(tag ‖ secret ‖ share₁ ‖
// … ‖ shareₘ), each length-prefixed. With no shares it is the secret
// itself. Every input is committed to before the root and revealed after
// it, so the opened leaves are unknown to the prover until the last of
// them is out, whoever else it colludes with.
func SamplingSecret(secret []byte, shares [][]byte) []byte {
	if len(shares) == 0 {
		return secret
	}
	h := sha256.New()
	h.Write([]byte(samplingTag))
	writeField(h, secret)
	for _, s := range shares {
		writeField(h, s)
	}
	return h.Sum(nil)
}

// CheckShares reports whether shares are the revealed shares of every
// share com lists, in its order.
func CheckShares(com *pb.Commitment, shares [][]byte) error {
	if len(shares) != len(com.GetShares()) {
		return fmt.Errorf("%w: %d shares for a commitment listing %d", ErrMalformed, len(shares), len(com.GetShares()))
	}
	for i, s := range com.GetShares() {
		if string(ShareHash(shares[i])) != string(s.GetHash()) {
			return fmt.Errorf("%w: share %d does not match its hash", ErrMalformed, i)
		}
	}
	return nil
}

// ShareSigningBytes returns what a share's signature covers:
// "poai/1/share" followed by the share's canonical encoding with its
// signature empty.
func ShareSigningBytes(s *pb.Share) ([]byte, error) {
	return signingBytes(shareTag, s, func(u *pb.Share) { u.Signature = nil })
}

// SignShare signs s with key, the verifier's, whose peer ID s names.
func SignShare(key crypto.PrivKey, s *pb.Share) error {
	b, err := ShareSigningBytes(s)
	if err != nil {
		return err
	}
	sig, err := key.Sign(b)
	if err != nil {
		return fmt.Errorf("sign share: %w", err)
	}
	s.Signature = sig
	return nil
}

// shareOK checks a share's fields and its signature by its verifier.
func shareOK(s *pb.Share) error {
	if _, err := parseCID("share challenge_cid", s.GetChallengeCid()); err != nil {
		return err
	}
	if len(s.GetHash()) != 32 {
		return fmt.Errorf("%w: share hash of %d bytes", ErrMalformed, len(s.GetHash()))
	}
	b, err := ShareSigningBytes(s)
	if err != nil {
		return err
	}
	return checkSignature("share", s.GetVerifier(), s.GetSignature(), b)
}

// sharesOK checks the shares a commitment lists: at most MaxShares, each
// signed by its verifier for the commitment's challenge, no verifier twice
// and none the prover itself.
func sharesOK(c *pb.Commitment) error {
	if len(c.GetShares()) > MaxShares {
		return fmt.Errorf("%w: %d shares, over %d", ErrMalformed, len(c.GetShares()), MaxShares)
	}
	seen := make(map[string]bool, len(c.GetShares()))
	for i, s := range c.GetShares() {
		if err := shareOK(s); err != nil {
			return fmt.Errorf("share %d: %w", i, err)
		}
		switch v := string(s.GetVerifier()); {
		case string(s.GetChallengeCid()) != string(c.GetChallengeCid()):
			return fmt.Errorf("%w: share %d is for another challenge", ErrMalformed, i)
		case seen[v]:
			return fmt.Errorf("%w: share %d: a verifier listed twice", ErrMalformed, i)
		case v == string(c.GetProver()):
			return fmt.Errorf("%w: share %d is the prover's own", ErrMalformed, i)
		default:
			seen[v] = true
		}
	}
	return nil
}
