// Package node ties poai together: it owns a peer's lifecycle (start in
// order, roll back on failure, close in reverse), its configuration, the
// epoch scheduler that issues challenges, the prover that answers them, the
// verifier that checks other peers' openings and publishes attestations,
// and the folding of attestations into the score book.
//
// node imports p2p, challenge, gpu and scoring and wires callbacks between
// them; none of them imports node.
//
// Where things are (every handler below runs on the one loop goroutine,
// Node.loop, which owns all mutable challenge state):
//
//   - node.go: the Node type, New, Start and Close, the loop, publishing.
//   - options.go, config.go, env.go, datadir.go: how a node is configured.
//   - router.go: topic validators (decode, validate, rate-limit) that hand
//     messages to the loop.
//   - claims.go: device claims, announced and heard, and what they plan.
//   - scheduler.go: epochs, who challenges whom and when, retries,
//     expiry.
//   - tracker.go: a challenge's life as followed by this node (tracked):
//     its commitment, opening and reveal as they arrive, orphans.
//   - prover.go: answering the challenges addressed to this node.
//   - verifier.go: checking an opening off the loop.
//   - judge.go: verdicts, attestations, equivocation, voids, re-checks.
//   - shares.go, selection.go, trust.go, overload.go, claimfetch.go: verifier
//     shares, verifier selection, EigenTrust inputs, overload withholding,
//     claim requests.
//   - api.go, httpserve.go, metrics.go, observer.go: the operator's HTTP
//     API and metrics, and what a devnet or a researcher reads of a node.
//   - adversary.go, adversary_prove.go, sybil.go: the labelled
//     adversaries, the roles a node may be given (WithRole).
//
// The test beds, a devnet on loopback and the sim on libp2p's in-memory
// network, live in node/devnet, so that a node's binary imports neither.
package node
