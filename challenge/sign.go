package challenge

import (
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge/pb"
)

// commitmentSigTag prefixes the bytes a commitment's signature covers, so
// a signature over a commitment can never be taken for one over another
// kind of message.
const commitmentSigTag = "poai/1/commitment"

// CommitmentSigningBytes returns what a commitment's signature covers:
// "poai/1/commitment" followed by the commitment's canonical encoding with
// its signature field empty.
func CommitmentSigningBytes(c *pb.Commitment) ([]byte, error) {
	return signingBytes(commitmentSigTag, c, func(u *pb.Commitment) { u.Signature = nil })
}

// signingBytes returns tag followed by the canonical encoding of a copy
// of m with its signature field cleared (clear): what an in-payload
// signature covers (commitments, shares).
func signingBytes[M proto.Message](tag string, m M, clear func(M)) ([]byte, error) {
	u := proto.Clone(m).(M)
	clear(u)
	b, err := Marshal(u)
	if err != nil {
		return nil, err
	}
	return append([]byte(tag), b...), nil
}

// checkSignature verifies sig over b under the public key that the peer
// ID author embeds (Ed25519 peer IDs do); what names the signed message
// in errors. It returns ErrMalformed when author is no peer ID with an
// embedded key, ErrBadSignature when sig is missing or wrong.
func checkSignature(what string, author, sig, b []byte) error {
	id, err := peer.IDFromBytes(author)
	if err != nil {
		return fmt.Errorf("%w: %s author: %v", ErrMalformed, what, err)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: %s author %s: no embedded public key: %v", ErrMalformed, what, id, err)
	}
	if len(sig) == 0 {
		return fmt.Errorf("%w: %s unsigned", ErrBadSignature, what)
	}
	if ok, err := pub.Verify(b, sig); err != nil || !ok {
		return fmt.Errorf("%w: %s of %s", ErrBadSignature, what, id)
	}
	return nil
}

// SignCommitment signs c with key (the prover's, whose peer ID c names)
// and returns c's CID with the signature in it.
func SignCommitment(key crypto.PrivKey, c *pb.Commitment) (cid.Cid, error) {
	b, err := CommitmentSigningBytes(c)
	if err != nil {
		return cid.Undef, err
	}
	sig, err := key.Sign(b)
	if err != nil {
		return cid.Undef, fmt.Errorf("sign commitment: %w", err)
	}
	c.Signature = sig
	_, id, err := MessageCID(c)
	return id, err
}

// CheckCommitmentSignature verifies c's signature under the public key its
// prover's peer ID holds (Ed25519 peer IDs embed it). It returns
// ErrBadSignature when the signature is missing or wrong, ErrMalformed
// when the prover field is no peer ID with an embedded key.
func CheckCommitmentSignature(c *pb.Commitment) error {
	b, err := CommitmentSigningBytes(c)
	if err != nil {
		return err
	}
	return checkSignature("commitment", c.GetProver(), c.GetSignature(), b)
}

// Sign signs the commitment with the prover's key and re-derives its CID.
// Call it after Stamp and before publishing.
func (c *Committed) Sign(key crypto.PrivKey) error {
	id, err := SignCommitment(key, c.Commitment)
	if err != nil {
		return err
	}
	c.CommitmentCID = id
	return nil
}
