// Package layout holds no code: its test checks the import arrows of
// poai's packages (docs/architecture.md) with go list, and fails when one
// is broken.
//
//	cmd/poai, cmd/poai-sim → node/devnet → node → {p2p, scoring, challenge} ;  challenge → gpu
//
// gpu knows no protocol, node no test bed, and the operator's binary no
// plotting library.
package layout
