// Package node ties poai together: it owns a peer's lifecycle (start in
// order, roll back on failure, close in reverse), its configuration, the
// epoch scheduler that issues challenges, the prover that answers them, the
// verifier that checks other peers' openings and publishes attestations,
// and the folding of attestations into the score book.
//
// node imports p2p, challenge, gpu and scoring and wires callbacks between
// them; none of them imports node.
//
// Rooms (types) and where they are:
//
//   - Node (node.go, lifecycle.go, router.go, api.go): the daemon. Start
//     and Close, the topic validators that hand messages to the loop,
//     the API. Safe from any goroutine; 24 methods.
//   - base (node.go): the wiring Node and tracker share (configuration,
//     identity, host, score book, clocks), fixed once Start returns.
//   - tracker (tracker.go, scheduler.go, prover.go, verifier.go,
//     judge.go, shares.go, trust.go, overload.go, claimfetch.go): the
//     loop goroutine's own state, every challenge this node follows
//     (tracked, its verdictState) and the handlers that move it. The loop
//     (Node.loop) runs them one at a time; proving and verifying run off
//     it and post their results back through events.
//   - claimBook, announcer (claims.go): the peers' device claims and this
//     node's own.
//   - earnedTrust (trust.go): who has passed a challenge, and so who may
//     challenge and verify (challenge.Pool).
//   - gossip, events (gossip.go): publishing, direct sends, shard topics;
//     the loop's queue.
//   - appScores (appscore.go), counters, delayLog, slotLedger (slots.go),
//     diskWatch (diskwatch.go): what gossipsub, reports and the operator
//     read.
//   - options.go, config.go, env.go, datadir.go: how a node is configured.
//   - adversary.go, adversary_prove.go, sybil.go: the labelled
//     adversaries, separate implementations of the role interfaces a node
//     consumes (WithRole).
//
// The pure schedule (who challenges whom, who verifies, when) is
// challenge's (challenge/schedule.go).
//
// The test beds, a devnet on loopback and the sim on libp2p's in-memory
// network, live in node/devnet, so that a node's binary imports neither.
package node
