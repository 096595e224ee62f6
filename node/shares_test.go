package node

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/scoring"
)

// TestWithheldRevealBlamed: a commitment in time that cannot be opened
// for want of the challenger's secret or of a listed verifier's share
// voids the challenge, and each peer that withheld its part, and only
// those, is contradicted.
func TestWithheldRevealBlamed(t *testing.T) {
	for _, tc := range []struct {
		name              string
		secret            bool
		revealed          []bool // per listed verifier
		wantContradiction float64
	}{
		{"a verifier withholds its share", true, []bool{true, false}, 1},
		{"two verifiers withhold", true, []bool{false, false}, 2},
		{"the challenger withholds its secret", false, []bool{true, true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(t.TempDir(), testConfig())
			if err != nil {
				t.Fatal(err)
			}
			n.id = randomID(t)
			n.claims.self, n.earned.self = n.id, n.id
			if n.book, err = scoring.Open(t.Context(), filepath.Join(t.TempDir(), ScoresDir), n.id.String(), scoring.DefaultParams(), nil); err != nil {
				t.Fatal(err)
			}
			defer n.book.Close()
			chCID := cid.NewCidV1(cid.Raw, []byte{0x12, 0x20, 1, 2, 3}) // any CID will do
			now := time.Now()
			ch := &pb.Challenge{Epoch: 1, DeadlineMs: 1000}
			tr := &tracked{ch: ch, cid: chCID, target: randomID(t), challenger: randomID(t), receivedAt: now.Add(-5 * time.Second), verifier: true}
			com := &pb.Commitment{ChallengeCid: chCID.Bytes()}
			var verifiers []peer.ID
			tr.shareSecrets = map[string][]byte{}
			for i, revealed := range tc.revealed {
				v := randomID(t)
				verifiers = append(verifiers, v)
				s := []byte{byte(i), 1, 2, 3}
				com.Shares = append(com.Shares, &pb.Share{Verifier: []byte(v), Hash: challenge.ShareHash(s)})
				if revealed {
					tr.shareSecrets[string(challenge.ShareHash(s))] = s
				}
			}
			tr.verifiers = append(verifiers, n.id)
			tr.com, tr.comAt = com, now.Add(-4500*time.Millisecond) // in time
			if tc.secret {
				tr.secret, tr.revealAt, tr.lastRevealAt = testSecretNode, now.Add(-4*time.Second), now.Add(-4*time.Second)
			}
			before := testutil.ToFloat64(n.metrics.checks.WithLabelValues("contradict"))
			n.tk.finalize(tr)
			if !tr.settled() {
				t.Fatal("challenge not settled")
			}
			if got := testutil.ToFloat64(n.metrics.checks.WithLabelValues("contradict")) - before; got != tc.wantContradiction {
				t.Fatalf("%v contradictions, want %v", got, tc.wantContradiction)
			}
			if got := testutil.ToFloat64(n.metrics.void.WithLabelValues("reveal")); got != 1 {
				t.Fatalf("%v voids, want 1", got)
			}
			// The void says who caused it: the challenger without its
			// secret, each verifier whose listed share never came.
			var want []string
			if !tc.secret {
				want = append(want, tr.challenger.String())
			}
			for i, revealed := range tc.revealed {
				if !revealed {
					want = append(want, verifiers[i].String())
				}
			}
			if v := n.tk.voids.recs; len(v) != 1 || v[0].Cause != "reveal" || !slices.Equal(v[0].Culprits, want) || v[0].Challenge != chCID.String() {
				t.Fatalf("void record %+v, want culprits %v", v, want)
			}
			// A verifier that withheld its listed share may not judge the
			// challenge it voided: its attestation counts for nothing.
			a := &pb.Attestation{ChallengeCid: chCID.Bytes(), Target: []byte(tr.target), Epoch: 1, DeadlineMs: 1000, Verdict: pb.Verdict_VERDICT_NO_ANSWER}
			n.tk.tracked[chCID.KeyString()] = tr
			for i, revealed := range tc.revealed {
				_, reason := n.tk.attestationFor(verifiers[i], a)
				if withheld := reason == "withheld_share"; withheld == revealed {
					t.Errorf("verifier %d (share revealed %v): attestation %q", i, revealed, reason)
				}
			}
		})
	}
}

var testSecretNode = []byte("a challenger's 32-byte secret...")

// TestSharesComplete: a commitment must list every share commitment that
// reached this node well before it (a colluding target would leave out the
// secrets it did not know); one that came just before it, and one that a
// silent verifier never sent, it need not.
func TestSharesComplete(t *testing.T) {
	n, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	target, early, late := randomID(t), randomID(t), randomID(t)
	ch := &pb.Challenge{DeadlineMs: 1600}
	tr := &tracked{ch: ch, target: target}
	t0 := time.Unix(1_000_000, 0)
	share := func(v peer.ID, b byte) *pb.Share {
		return &pb.Share{Verifier: []byte(v), Hash: []byte{b}}
	}
	tr.shares = map[peer.ID]*pb.Share{early: share(early, 1), late: share(late, 2)}
	tr.shareAt = map[peer.ID]time.Time{early: t0, late: t0.Add(950 * time.Millisecond)}
	at := t0.Add(time.Second) // the commitment: early's share came 1 s before, late's 50 ms
	if v := n.tk.sharesComplete(tr, &pb.Commitment{}, at); v != early {
		t.Fatalf("a commitment listing no share: omission %q, want the early verifier", v)
	}
	if v := n.tk.sharesComplete(tr, &pb.Commitment{Shares: []*pb.Share{share(early, 9)}}, at); v != early {
		t.Fatalf("a commitment listing another share of the early verifier: omission %q, want it", v)
	}
	if v := n.tk.sharesComplete(tr, &pb.Commitment{Shares: []*pb.Share{share(early, 1)}}, at); v != "" {
		t.Fatalf("a commitment listing the early share: omission %q; the late one (50 ms) is not required", v)
	}
	tr.shares, tr.shareAt = nil, nil // every verifier silent
	if v := n.tk.sharesComplete(tr, &pb.Commitment{}, at); v != "" {
		t.Fatalf("no share ever sent: omission %q", v)
	}
}

// TestPickShares: a target lists its possible verifiers' shares before
// anyone else's, at most challenge.MaxShares, ordered by verifier.
func TestPickShares(t *testing.T) {
	var shares []*pb.Share
	var prefer []peer.ID
	for i := range challenge.MaxShares + 4 {
		id := randomID(t)
		shares = append(shares, &pb.Share{Verifier: []byte(id)})
		if i%7 == 0 {
			prefer = append(prefer, id)
		}
	}
	got := pickShares(shares, prefer)
	if len(got) != challenge.MaxShares {
		t.Fatalf("%d shares listed, want %d", len(got), challenge.MaxShares)
	}
	for _, p := range prefer {
		if challenge.ListedShare(&pb.Commitment{Shares: got}, p) == nil {
			t.Fatalf("a possible verifier's share left out for another's")
		}
	}
	for i := 1; i < len(got); i++ {
		if string(got[i-1].GetVerifier()) >= string(got[i].GetVerifier()) {
			t.Fatal("shares not ordered by verifier")
		}
	}
}
