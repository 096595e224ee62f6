// Package devnet runs local poai networks for tests, demos and research:
// a devnet of real nodes on loopback (Start), or the sim of up to a few
// thousand nodes on libp2p's in-memory network, split into shards
// (RunSim). Nodes may prove on emulated devices (gpu.Emulated), each with
// its own throughput and memory, and may be given labelled adversary
// roles (node.Role); Report and SimReport say who caught whom and when.
package devnet
