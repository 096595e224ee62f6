package challenge

import (
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/proto"
)

// CodecProtobuf is the multicodec code of "protobuf" (0x50) from the
// multicodec table; poai's CIDs name protobuf-encoded messages.
const CodecProtobuf = 0x50

var cidPrefix = cid.Prefix{Version: 1, Codec: CodecProtobuf, MhType: multihash.SHA2_256, MhLength: -1}

// CIDOf returns the CIDv1 (sha2-256, codec protobuf) of canonical bytes.
func CIDOf(canonical []byte) cid.Cid {
	c, err := cidPrefix.Sum(canonical)
	if err != nil {
		// Sum fails only for an unknown hash function; sha2-256 is built in.
		panic(fmt.Sprintf("challenge: cid sum: %v", err))
	}
	return c
}

// Marshal returns the canonical encoding of m: deterministic protobuf.
func Marshal(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// MessageCID returns the canonical encoding of m and its CID.
func MessageCID(m proto.Message) ([]byte, cid.Cid, error) {
	b, err := Marshal(m)
	if err != nil {
		return nil, cid.Undef, err
	}
	return b, CIDOf(b), nil
}

// unmarshalCanonical decodes data into m and checks that data is m's
// canonical encoding, so that one message has exactly one CID.
func unmarshalCanonical(data []byte, m proto.Message) error {
	if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(data, m); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(m.ProtoReflect().GetUnknown()) > 0 {
		return fmt.Errorf("%w: unknown fields", ErrMalformed)
	}
	again, err := Marshal(m)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if string(again) != string(data) {
		return fmt.Errorf("%w: not in canonical encoding", ErrMalformed)
	}
	return nil
}

// parseCID returns the CID in b, or ErrMalformed naming field.
func parseCID(field string, b []byte) (cid.Cid, error) {
	c, err := cid.Cast(b)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	if p := c.Prefix(); p.Version != 1 || p.Codec != CodecProtobuf || p.MhType != multihash.SHA2_256 {
		return cid.Undef, fmt.Errorf("%w: %s: unexpected CID prefix", ErrMalformed, field)
	}
	return c, nil
}
