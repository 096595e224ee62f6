package challenge

import (
	"errors"
	"fmt"
)

// Validation errors. A pubsub validator rejects a message for most of
// them; it ignores (no gossipsub penalty) ErrStale, ErrOutOfEpoch,
// ErrEpochMismatch and ErrReplayed, which an honest forwarder can
// deliver. The node counts both by these reasons.
var (
	// ErrMalformed: the bytes do not decode, are not in canonical form, or
	// a field is missing or out of range.
	ErrMalformed = errors.New("malformed message")
	// ErrOversized: the message exceeds its topic's size limit.
	ErrOversized = errors.New("oversized message")
	// ErrStale: the message's timestamp or epoch is outside the accepted
	// window.
	ErrStale = errors.New("stale message")
	// ErrOutOfEpoch: the message's epoch is outside the receiver's epoch
	// window (Validator.EpochWindow for messages about a challenge). It
	// wraps ErrStale: the message is ignored, not rejected, as an honest
	// slow peer or clock can send one.
	ErrOutOfEpoch = fmt.Errorf("%w: epoch outside the window", ErrStale)
	// ErrEpochMismatch: a commitment, opening, reveal or attestation names
	// another epoch than its challenge, which this validator accepted. It
	// is ignored, not rejected: a peer that forwarded it before it heard
	// the challenge could not have known, and a rejection would charge
	// that forwarder, not the author (RoleEpochSkew's move).
	ErrEpochMismatch = errors.New("epoch differs from its challenge's")
	// ErrReplayed: a message with the same content ID was already accepted.
	ErrReplayed = errors.New("replayed message")
	// ErrSigner: the gossipsub signer is not the peer the message says
	// wrote it.
	ErrSigner = errors.New("signer does not match message author")
	// ErrSelfRequest: a challenge request names its own requester as the
	// target; a target may not choose when it is challenged.
	ErrSelfRequest = errors.New("challenge requested by its own target")
	// ErrBadSignature: a signature carried inside a message (a
	// commitment's) does not verify under its author's key.
	ErrBadSignature = errors.New("bad message signature")
)

// Reason returns a short label for a validation error, for metrics: one of
// "malformed", "oversized", "out_of_epoch", "epoch_mismatch", "stale",
// "replayed", "signer", "self_request", "bad_signature" or "other".
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrOversized):
		return "oversized"
	case errors.Is(err, ErrOutOfEpoch):
		return "out_of_epoch"
	case errors.Is(err, ErrEpochMismatch):
		return "epoch_mismatch"
	case errors.Is(err, ErrStale):
		return "stale"
	case errors.Is(err, ErrReplayed):
		return "replayed"
	case errors.Is(err, ErrSigner):
		return "signer"
	case errors.Is(err, ErrSelfRequest):
		return "self_request"
	case errors.Is(err, ErrBadSignature):
		return "bad_signature"
	}
	return "other"
}
