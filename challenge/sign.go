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
	u := proto.Clone(c).(*pb.Commitment)
	u.Signature = nil
	b, err := Marshal(u)
	if err != nil {
		return nil, err
	}
	return append([]byte(commitmentSigTag), b...), nil
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
	id, err := peer.IDFromBytes(c.GetProver())
	if err != nil {
		return fmt.Errorf("%w: prover: %v", ErrMalformed, err)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: prover %s: no embedded public key: %v", ErrMalformed, id, err)
	}
	if len(c.GetSignature()) == 0 {
		return fmt.Errorf("%w: commitment unsigned", ErrBadSignature)
	}
	b, err := CommitmentSigningBytes(c)
	if err != nil {
		return err
	}
	ok, err := pub.Verify(b, c.GetSignature())
	if err != nil || !ok {
		return fmt.Errorf("%w: commitment of %s", ErrBadSignature, id)
	}
	return nil
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
