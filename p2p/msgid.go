package p2p

import (
	"fmt"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsub_pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/proto"
)

// CodecRaw is the multicodec code of "raw" (0x55): a message ID names
// bytes, not a decodable message.
const CodecRaw = 0x55

var msgIDPrefix = cid.Prefix{Version: 1, Codec: CodecRaw, MhType: multihash.SHA2_256, MhLength: -1}

// SignedBytes returns the bytes a gossipsub message's envelope signature
// covers, as the libp2p pubsub specification defines them:
// "libp2p-pubsub:" followed by the protobuf encoding of m with its
// signature and key fields cleared (from, data, seqno and topic, in field
// order).
func SignedBytes(m *pubsub_pb.Message) ([]byte, error) {
	u := proto.CloneOf(m)
	u.Signature, u.Key = nil, nil
	b, err := proto.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("encode pubsub message: %w", err)
	}
	return append([]byte(pubsub.SignPrefix), b...), nil
}

// MessageIDCID returns the message ID of m as a CID: CIDv1, codec raw
// (0x55), sha2-256 multihash of SignedBytes(m).
func MessageIDCID(m *pubsub_pb.Message) (cid.Cid, error) {
	b, err := SignedBytes(m)
	if err != nil {
		return cid.Undef, err
	}
	return msgIDPrefix.Sum(b)
}

// MessageID is poai's gossipsub message ID function
// (pubsub.WithMessageIdFn), docs/protocol.md §4.3: the binary form of
// MessageIDCID(m), 36 bytes 01 55 12 20 ‖ SHA-256(SignedBytes(m)), as a
// string.
//
// It addresses exactly what the envelope signature covers. Two messages
// share an ID only when they share from, seqno, topic and data, so they
// are one message of one author whatever their signature or key fields
// say. A peer that wraps someone else's payload in its own envelope gets
// another ID: its copy, which the validators reject (the payload's author
// is not the signer), cannot make the author's own copy a duplicate. An ID
// of the data alone would let it, since gossipsub marks an ID seen before
// the topic validator runs: the author's copy would then be dropped, and
// every honest peer relaying it charged with an invalid message.
func MessageID(m *pubsub_pb.Message) string {
	c, err := MessageIDCID(m)
	if err != nil {
		// Unreachable for a message that was decoded (its fields encode
		// again); such a message also fails its signature check, so fall
		// back to an ID that no CID takes (a peer ID starts with 00).
		return pubsub.DefaultMsgIdFn(m)
	}
	return c.KeyString()
}
