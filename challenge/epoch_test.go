package challenge

import (
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge/pb"
)

// epochMessage is a message about a challenge, with its author and the
// validator of its topic.
type epochMessage struct {
	name     string
	from     peer.ID
	data     []byte
	validate func(*Validator) func(peer.ID, []byte, time.Time) error
}

// epochMessages builds, for challenge chCID, the messages that name the
// challenge's epoch as e: the prover's signed commitment, its opening,
// the challenger's reveal and a verifier's share commitment.
func epochMessages(t *testing.T, chCID cid.Cid, e uint64) []epochMessage {
	t.Helper()
	proverKey, prover := newKeyPeer(t)
	challenger := newPeer(t)
	verifierKey, verifier := newKeyPeer(t)

	com := testCommitment(t, prover, chCID.Bytes())
	com.Epoch = e
	comCID, err := SignCommitment(proverKey, com)
	if err != nil {
		t.Fatal(err)
	}
	comBytes := mustMarshal(t, com)
	op := &pb.Opening{ChallengeCid: chCID.Bytes(), CommitmentCid: comCID.Bytes(), Prover: []byte(prover), Epoch: e,
		Rows: []*pb.RowOpening{{Index: 0, Values: make([]byte, 4*32)}}}
	reveal := &pb.Reveal{ChallengeCid: chCID.Bytes(), Challenger: []byte(challenger), Secret: testSecret, Commitment: comBytes, Epoch: e}
	sh := &pb.Share{ChallengeCid: chCID.Bytes(), Verifier: []byte(verifier), Hash: ShareHash(make([]byte, 32))}
	if err := SignShare(verifierKey, sh); err != nil {
		t.Fatal(err)
	}
	share := &pb.Reveal{ChallengeCid: chCID.Bytes(), Share: sh, Epoch: e}
	return []epochMessage{
		{"commitment", prover, comBytes, func(v *Validator) func(peer.ID, []byte, time.Time) error { return drop(v.Commitment) }},
		{"opening", prover, mustMarshal(t, op), func(v *Validator) func(peer.ID, []byte, time.Time) error { return drop(v.Opening) }},
		{"reveal", challenger, mustMarshal(t, reveal), func(v *Validator) func(peer.ID, []byte, time.Time) error { return drop(v.Reveal) }},
		{"share commitment", verifier, mustMarshal(t, share), func(v *Validator) func(peer.ID, []byte, time.Time) error { return drop(v.Reveal) }},
	}
}

func drop[M any](f func(peer.ID, []byte, time.Time) (M, cid.Cid, error)) func(peer.ID, []byte, time.Time) error {
	return func(from peer.ID, data []byte, now time.Time) error {
		_, _, err := f(from, data, now)
		return err
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEpochWindow: commitments, openings and reveals are accepted in
// [current − lag, current + MaxEpochLag] and ignored (ErrOutOfEpoch, a
// kind of ErrStale) outside it; lag is MaxEpochLag + FollowEpochs +
// ceil(2·MaxDeadline / epoch length).
func TestEpochWindow(t *testing.T) {
	const cur = 200
	now := testClock.Start(cur).Add(testClock.Length / 2)
	l := DefaultLimits()
	lag := l.MaxEpochLag + FollowEpochs + uint64((2*l.MaxDeadline+testClock.Length-1)/testClock.Length)
	lo, hi := NewValidator(l, testClock, 16).EpochWindow(now)
	if lo != cur-lag || hi != cur+l.MaxEpochLag {
		t.Fatalf("window [%d, %d], want [%d, %d]", lo, hi, cur-lag, cur+l.MaxEpochLag)
	}
	_, _, chCID := newChallenge(t, newPeer(t), newPeer(t), now)
	for _, tc := range []struct {
		e  uint64
		ok bool
	}{{lo - 1, false}, {lo, true}, {cur, true}, {hi, true}, {hi + 1, false}, {0, false}} {
		for _, m := range epochMessages(t, chCID, tc.e) {
			err := m.validate(NewValidator(l, testClock, 16))(m.from, m.data, now)
			switch {
			case tc.ok && err != nil:
				t.Errorf("%s of epoch %d at epoch %d: %v, want accepted", m.name, tc.e, cur, err)
			case !tc.ok && (!errors.Is(err, ErrOutOfEpoch) || !errors.Is(err, ErrStale) || Reason(err) != "out_of_epoch"):
				t.Errorf("%s of epoch %d at epoch %d: %v (%s), want ErrOutOfEpoch", m.name, tc.e, cur, err, Reason(err))
			}
		}
	}
}

// TestEpochReplay: a message accepted once is a replay for as long as its
// epoch is in the window (the replay cache outlives 2·MaxSkew to cover
// it), and out of the window after that: never accepted twice.
func TestEpochReplay(t *testing.T) {
	const cur = 200
	now := testClock.Start(cur)
	v := NewValidator(DefaultLimits(), testClock, 64)
	_, _, chCID := newChallenge(t, newPeer(t), newPeer(t), now)
	lo, _ := v.EpochWindow(now)
	lag := cur - lo
	for _, m := range epochMessages(t, chCID, cur) {
		validate := m.validate(v)
		if err := validate(m.from, m.data, now); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		for _, at := range []time.Time{now.Add(3 * DefaultLimits().MaxSkew), testClock.Start(cur + lag).Add(testClock.Length - 1)} {
			if err := validate(m.from, m.data, at); !errors.Is(err, ErrReplayed) {
				t.Errorf("%s replayed at epoch %d: %v, want ErrReplayed", m.name, testClock.At(at), err)
			}
		}
		// Past the window: out of epoch, or still a replay while the
		// cache holds it (its span covers the lead too); past that, out of
		// epoch only.
		at := testClock.Start(cur + lag + 1)
		if err := validate(m.from, m.data, at); !errors.Is(err, ErrOutOfEpoch) && !errors.Is(err, ErrReplayed) {
			t.Errorf("%s replayed at epoch %d: %v, want ignored", m.name, testClock.At(at), err)
		}
		at = testClock.Start(cur + lag + 2*DefaultLimits().MaxEpochLag + 2)
		if err := validate(m.from, m.data, at); !errors.Is(err, ErrOutOfEpoch) {
			t.Errorf("%s replayed at epoch %d: %v, want ErrOutOfEpoch", m.name, testClock.At(at), err)
		}
	}
}

// TestGenesisEpoch: epoch 0 is the first epoch, accepted while it is in
// the window; a message of the encoding before the epoch field (which
// reads as epoch 0) is ignored once the network is past it.
func TestGenesisEpoch(t *testing.T) {
	now := testClock.Start(1)
	_, _, chCID := newChallenge(t, newPeer(t), newPeer(t), now)
	for _, m := range epochMessages(t, chCID, 0) {
		if err := m.validate(NewValidator(DefaultLimits(), testClock, 16))(m.from, m.data, now); err != nil {
			t.Errorf("%s of epoch 0 at epoch 1: %v", m.name, err)
		}
	}
}

// TestEpochMismatch: a commitment, opening, reveal or attestation naming
// another epoch than that of its challenge, which the validator accepted,
// is ErrEpochMismatch (ignored: it depends on what the receiver heard
// first, so a rejection would charge honest forwarders), even inside the
// window; a reveal of one epoch carrying a commitment of another is
// malformed (rejected: every receiver can tell from the reveal alone). A commitment's epoch is signed.
func TestEpochMismatch(t *testing.T) {
	const cur = 200
	now := testClock.Start(cur)
	challenger := newPeer(t)
	ch, chBytes, chCID := newChallenge(t, challenger, newPeer(t), now)
	for _, e := range []uint64{cur - 1, cur, cur + 1} {
		for _, m := range epochMessages(t, chCID, e) {
			v := NewValidator(DefaultLimits(), testClock, 16)
			if _, _, err := v.Challenge(challenger, chBytes, now); err != nil {
				t.Fatal(err)
			}
			err := m.validate(v)(m.from, m.data, now)
			if e == ch.GetEpoch() && err != nil {
				t.Errorf("%s of its challenge's epoch: %v", m.name, err)
			}
			if e != ch.GetEpoch() && (!errors.Is(err, ErrEpochMismatch) || Reason(err) != "epoch_mismatch") {
				t.Errorf("%s of epoch %d, challenge of %d: %v, want ErrEpochMismatch", m.name, e, ch.GetEpoch(), err)
			}
		}
	}

	verifier := newPeer(t)
	att := &pb.Attestation{ChallengeCid: chCID.Bytes(), Target: ch.GetTarget(), Verifier: []byte(verifier), Epoch: cur - 1,
		Verdict: pb.Verdict_VERDICT_PASS, DeadlineMs: 1000, DataAccuracy: 1, IssuedUnixMs: now.UnixMilli()}
	v := NewValidator(DefaultLimits(), testClock, 16)
	if _, _, err := v.Challenge(challenger, chBytes, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Attestation(verifier, mustMarshal(t, att), now); !errors.Is(err, ErrEpochMismatch) {
		t.Errorf("attestation of another epoch than its challenge's: %v, want ErrEpochMismatch", err)
	}

	// A reveal of epoch cur carrying a commitment of epoch cur-1.
	key, prover := newKeyPeer(t)
	com := testCommitment(t, prover, chCID.Bytes())
	com.Epoch = cur - 1
	if _, err := SignCommitment(key, com); err != nil {
		t.Fatal(err)
	}
	r := &pb.Reveal{ChallengeCid: chCID.Bytes(), Challenger: []byte(challenger), Secret: testSecret, Commitment: mustMarshal(t, com), Epoch: cur}
	if _, _, err := NewValidator(DefaultLimits(), testClock, 16).Reveal(challenger, mustMarshal(t, r), now); !errors.Is(err, ErrMalformed) {
		t.Errorf("reveal of epoch %d opening a commitment of epoch %d: %v, want ErrMalformed", cur, cur-1, err)
	}

	// The signature covers the epoch: moving a commitment to another
	// epoch breaks it.
	com.Epoch = cur
	if _, _, err := NewValidator(DefaultLimits(), testClock, 16).Commitment(prover, mustMarshal(t, com), now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("commitment moved to another epoch: %v, want ErrBadSignature", err)
	}
}
