package node

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/ipfs/go-cid"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
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

// A claim no configured workload can be planned for (an H100 at a 80 ms
// target with k = m = 128, as poai-sim runs) is flagged and scored below
// the graylist; a claim that can be challenged is not.
func TestUnverifiableClaimGraylisted(t *testing.T) {
	c := testConfig()
	c.Challenge.TargetDuration = Duration(80 * time.Millisecond)
	c.Challenge.Allowance = Duration(150 * time.Millisecond)
	c.Challenge.Slack = 3
	c.Challenge.K, c.Challenge.M = 128, 128
	c.Challenge.Workloads = []string{"int8"}
	n, err := New(t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	forged, small := peer.ID("forged"), peer.ID("small")
	at := time.Now()
	claim := func(c *pb.DeviceClaim) decoded {
		_, id, err := challenge.MessageCID(c)
		if err != nil {
			t.Fatal(err)
		}
		return decoded{msg: c, cid: id}
	}
	n.claims.onClaim(forged, claim(&pb.DeviceClaim{Model: ForgedModel, Int8Tops: 1979, VramBytes: 80 << 30}), at)
	n.claims.onClaim(small, claim(&pb.DeviceClaim{Model: "amd64 CPU", Int8Tops: 0.002}), at)
	if got := n.app.score(forged); got != UnverifiableScore || got >= p2p.GraylistThreshold {
		t.Errorf("unplannable H100 claim scored %v, want %v (below the graylist)", got, UnverifiableScore)
	}
	if !slices.Contains(n.claims.peers[forged].flags, FlagUnverifiable) {
		t.Errorf("unplannable claim not flagged: %v", n.claims.peers[forged].flags)
	}
	if got := n.app.score(small); got != 0 || slices.Contains(n.claims.peers[small].flags, FlagUnverifiable) {
		t.Errorf("a claim that can be challenged scored %v with flags %v", got, n.claims.peers[small].flags)
	}
	// A new claim that can be challenged clears the flag.
	n.claims.onClaim(forged, claim(&pb.DeviceClaim{Model: "amd64 CPU", Int8Tops: 0.002, IssuedUnixMs: 1}), at)
	if got := n.app.score(forged); got != 0 {
		t.Errorf("after a plannable claim the peer scores %v", got)
	}
}

// A node with WithLoss(1) loses every message from another peer before
// decoding it, counted as loss, but never its own (its publications pass
// its own validator first); with no loss nothing is lost.
func TestValidatorLoss(t *testing.T) {
	for _, loss := range []float64{1, 0} {
		n, err := New(t.TempDir(), testConfig(), WithLoss(loss))
		if err != nil {
			t.Fatal(err)
		}
		decoded := 0
		v := n.validatorFor(p2p.TopicClaims, func(peer.ID, []byte, time.Time) (proto.Message, cid.Cid, error) {
			decoded++
			return &pb.DeviceClaim{}, cid.Undef, nil
		})
		other := randomID(t)
		_, err = v(t.Context(), other, []byte("x"))
		lost := testutil.ToFloat64(n.metrics.messages.WithLabelValues(p2p.TopicClaims, "ignore", "loss"))
		if loss == 1 && (!errors.Is(err, p2p.ErrIgnore) || decoded != 0 || lost != 1) {
			t.Fatalf("loss 1: err %v, decoded %d, counted lost %v", err, decoded, lost)
		}
		if loss == 0 && (err != nil || decoded != 1 || lost != 0) {
			t.Fatalf("loss 0: err %v, decoded %d, counted lost %v", err, decoded, lost)
		}
		if _, err := v(t.Context(), n.id, []byte("x")); err != nil {
			t.Fatalf("loss %v: own message: %v", loss, err)
		}
	}
}

// TestAppScoreMissRamp: one confirmed miss on a one-challenge record (3
// attestations) keeps a peer above the graylist; a peer that missed both
// of its challenges, or most of a long record, falls below it; wrong
// answers get no such credit.
func TestAppScoreMissRamp(t *testing.T) {
	min := scoring.DefaultTrustParams().MinEvidence
	cases := []struct {
		name       string
		pt         scoring.PeerTrust
		graylisted bool
	}{
		{"one miss of one", scoring.PeerTrust{Bad: 1, Missing: 1, Evidence: 3}, false},
		{"two misses of two", scoring.PeerTrust{Bad: 1, Missing: 1, Evidence: 6}, true},
		{"six of ten", scoring.PeerTrust{Bad: 0.6, Missing: 0.6, Evidence: 30, Score: 0.4}, true},
		{"four of ten", scoring.PeerTrust{Bad: 0.4, Missing: 0.4, Evidence: 30, Score: 0.6}, false},
		{"one wrong of one", scoring.PeerTrust{Bad: 1, Evidence: 3}, true},
		{"half of ten, with a low score", scoring.PeerTrust{Bad: 0.55, Missing: 0.55, Evidence: 10, Score: 0.05}, true},
	}
	for _, c := range cases {
		if got := AppScore(c.pt, min); (got < p2p.GraylistThreshold) != c.graylisted {
			t.Errorf("%s: app score %.0f, graylisted %v, want %v", c.name, got, got < p2p.GraylistThreshold, c.graylisted)
		}
	}
}
