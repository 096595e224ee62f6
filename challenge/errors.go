package challenge

import "errors"

// Validation errors. A pubsub validator rejects a message for any of them;
// the node counts rejections by these reasons.
var (
	// ErrMalformed: the bytes do not decode, are not in canonical form, or
	// a field is missing or out of range.
	ErrMalformed = errors.New("malformed message")
	// ErrOversized: the message exceeds its topic's size limit.
	ErrOversized = errors.New("oversized message")
	// ErrStale: the message's timestamp or epoch is outside the accepted
	// window.
	ErrStale = errors.New("stale message")
	// ErrReplayed: a message with the same content ID was already accepted.
	ErrReplayed = errors.New("replayed message")
	// ErrSigner: the gossipsub signer is not the peer the message says
	// wrote it.
	ErrSigner = errors.New("signer does not match message author")
)

// Reason returns a short label for a validation error, for metrics: one of
// "malformed", "oversized", "stale", "replayed", "signer", or "other".
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrOversized):
		return "oversized"
	case errors.Is(err, ErrStale):
		return "stale"
	case errors.Is(err, ErrReplayed):
		return "replayed"
	case errors.Is(err, ErrSigner):
		return "signer"
	}
	return "other"
}
