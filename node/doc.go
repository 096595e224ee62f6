// Package node ties poai together: it owns a peer's lifecycle (start in
// order, roll back on failure, close in reverse), its configuration, the
// epoch scheduler that issues challenges, the prover that answers them, the
// verifier that checks other peers' openings and publishes attestations,
// and the folding of attestations into the score book.
//
// node imports p2p, challenge, gpu and scoring and wires callbacks between
// them; none of them imports node.
package node
