package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsub_pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// TestMessageID checks MessageID against an encoding built by hand: the
// CIDv1 (raw, sha2-256) of "libp2p-pubsub:" ‖ from, data, seqno, topic as
// protobuf fields 1 to 4; the signature and key do not count, every other
// field does.
func TestMessageID(t *testing.T) {
	from := []byte("\x00\x24\x08\x01\x12\x20abcdefghijklmnopqrstuvwxyz012345")
	m := &pubsub_pb.Message{
		From: from, Data: []byte("payload"), Seqno: []byte{0, 0, 0, 0, 0, 0, 0, 7},
		Topic: proto.String(TopicClaims), Signature: []byte("sig"), Key: []byte("key"),
	}
	want := []byte(pubsub.SignPrefix)
	for i, f := range [][]byte{m.From, m.Data, m.Seqno, []byte(m.GetTopic())} {
		want = protowire.AppendTag(want, protowire.Number(i+1), protowire.BytesType)
		want = protowire.AppendBytes(want, f)
	}
	got, err := SignedBytes(m)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("SignedBytes = %x, %v; want %x", got, err, want)
	}
	sum := sha256.Sum256(want)
	wantID := string(append([]byte{0x01, CodecRaw, 0x12, 0x20}, sum[:]...))
	id := MessageID(m)
	if id != wantID {
		t.Fatalf("MessageID = %x, want %x", id, wantID)
	}
	c, err := cid.Cast([]byte(id))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Prefix(); p.Version != 1 || p.Codec != CodecRaw || p.MhType != multihash.SHA2_256 {
		t.Fatalf("message ID %s has prefix %+v", c, p)
	}

	same := proto.CloneOf(m)
	same.Signature, same.Key = []byte("another signature"), nil
	if MessageID(same) != id {
		t.Error("the message ID depends on the signature or key fields")
	}
	for name, edit := range map[string]func(*pubsub_pb.Message){
		"from":  func(u *pubsub_pb.Message) { u.From = []byte("\x00\x24other") },
		"data":  func(u *pubsub_pb.Message) { u.Data = []byte("payload!") },
		"seqno": func(u *pubsub_pb.Message) { u.Seqno = []byte{0, 0, 0, 0, 0, 0, 0, 8} },
		"topic": func(u *pubsub_pb.Message) { u.Topic = proto.String(TopicChallenges) },
	} {
		u := proto.CloneOf(m)
		edit(u)
		if MessageID(u) == id {
			t.Errorf("changing %s keeps the message ID", name)
		}
	}
}

// authorValidator accepts a payload that starts with its signer's peer ID
// (as poai's validators bind a payload's author to the signer) and reports
// every rejection on rejected.
func authorValidator(rejected chan<- peer.ID) Validator {
	return func(_ context.Context, from peer.ID, data []byte) (any, error) {
		if !bytes.HasPrefix(data, []byte(from)) {
			select {
			case rejected <- from:
			default:
			}
			return nil, errors.New("payload author is not its signer")
		}
		return nil, nil
	}
}

// TestWrappedPayloadDoesNotShadowAuthor: a peer that publishes another's
// payload in its own envelope is rejected, and the author's own copy of
// the payload, arriving later, is still delivered. With an ID of the data
// alone the wrapped copy would have marked the author's seen.
func TestWrappedPayloadDoesNotShadowAuthor(t *testing.T) {
	rejected := make(chan peer.ID, 4)
	got := make(chan Message, 4)
	n := newHost(t)
	if err := n.Join(TopicClaims, authorValidator(rejected), func(m Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	a := newHost(t)
	if err := a.Join(TopicClaims, authorValidator(nil), func(Message) {}); err != nil {
		t.Fatal(err)
	}
	payload := append([]byte(a.ID()), " says hello"...)

	// The wrapper: a bare gossipsub router with poai's IDs and no
	// validator, which sends what it publishes to every peer it knows.
	k, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	mh, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mh.Close() })
	ctx := t.Context()
	mps, err := pubsub.NewGossipSub(ctx, mh, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign), pubsub.WithMessageIdFn(MessageID), pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	mt, err := mps.Join(TopicClaims)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mt.Subscribe(); err != nil {
		t.Fatal(err)
	}
	if err := mh.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Libp2p().Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the wrapper and the node to see each other's subscription", func() bool {
		return len(mt.ListPeers()) > 0 && len(n.MeshPeers(TopicClaims)) > 0
	})
	if err := mt.Publish(ctx, payload); err != nil {
		t.Fatal(err)
	}
	select {
	case from := <-rejected:
		if from != mh.ID() {
			t.Fatalf("rejected a copy signed by %s, want the wrapper %s", from, mh.ID())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wrapped copy never reached the node's validator")
	}

	if err := a.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Libp2p().Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the author to graft the node", func() bool { return slices.Contains(a.Mesh()[TopicClaims], n.ID()) })
	if err := a.Publish(ctx, TopicClaims, payload); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.From != a.ID() || !bytes.Equal(m.Data, payload) {
			t.Fatalf("delivered %q from %s, want the author's payload", m.Data, m.From)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the author's copy was not delivered after a wrapped copy of its payload")
	}
}
