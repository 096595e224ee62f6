// Package challenge is poai's protocol and proof logic: wire message
// decoding and validation, content IDs, seed derivation, workload sizing
// from a device claim, proving (commit and open) and verification.
//
// It does no network I/O and keeps no state beyond a bounded replay cache,
// so every decoder and the verifier can be fuzzed. It imports gpu for the
// workload primitives and challenge/merkle for commitments; it must not
// import p2p, scoring or node.
package challenge
