package node

import (
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/ipfs/go-cid"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// A node of a sharded network rejects, before decoding, messages whose
// author belongs to another shard, and counts them.
func TestValidatorRejectsOtherShards(t *testing.T) {
	c := testConfig()
	c.P2P.Shards = 4
	n, err := New(t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	n.shard = 2
	decoded := 0
	v := n.validatorFor(p2p.TopicClaims, func(peer.ID, []byte, time.Time) (proto.Message, cid.Cid, error) {
		decoded++
		return &pb.DeviceClaim{}, cid.Undef, nil
	})
	var inside, outside peer.ID
	for inside == "" || outside == "" {
		_, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPublicKey(pub)
		if p2p.ShardOf(id, 4) == 2 {
			inside = id
		} else {
			outside = id
		}
	}
	if _, err := v(t.Context(), outside, []byte("x")); err == nil || errors.Is(err, p2p.ErrIgnore) {
		t.Fatalf("a message from another shard's author: err %v, want a rejection", err)
	}
	if decoded != 0 {
		t.Fatal("a message from another shard was decoded")
	}
	if got := testutil.ToFloat64(n.metrics.messages.WithLabelValues(p2p.TopicClaims, "reject", "shard")); got != 1 {
		t.Fatalf("shard rejections counted %v, want 1", got)
	}
	if _, err := v(t.Context(), inside, []byte("x")); err != nil || decoded != 1 {
		t.Fatalf("a message from this shard's author: err %v, decoded %d", err, decoded)
	}
}
