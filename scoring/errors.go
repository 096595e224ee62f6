package scoring

import "errors"

var (
	// ErrDuplicate: the verifier already attested this challenge.
	ErrDuplicate = errors.New("duplicate attestation")
	// ErrSchema: the store was written by a newer schema than this binary
	// understands.
	ErrSchema = errors.New("unsupported score store schema")
	// ErrInvalid: an attestation is missing a field or has one out of
	// range.
	ErrInvalid = errors.New("invalid attestation")
	// ErrDamaged: the store's files are damaged, or it holds less than its
	// seal says it did (a deleted MANIFEST, a damaged write-ahead log):
	// restore it from a backup, or start afresh (Reset).
	ErrDamaged = errors.New("score store damaged")
)
