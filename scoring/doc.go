// Package scoring folds attestations into per-peer integrity scores and
// keeps them, with the history they came from, in Badger so a restarted
// node keeps what it learned.
//
// scoring knows peers only as strings and attestations only as the
// Attestation struct defined here: it must not import p2p, challenge or
// node, and knows no wire types.
package scoring
