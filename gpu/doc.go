// Package gpu computes the primitives of poai's proof workloads on one
// device: Philox fills, matrix products and Merkle leaf hashing.
//
// It owns the Backend interface and the CPU backend that runs everywhere.
// Device backends (CUDA, in gpu/cuda) must produce the same bits as the CPU
// backend for the same seed and shape. Emulated wraps a backend as a
// device with a budget of its own (rates per workload, memory) for
// devnets; DeviceCatalog holds the device models: DefaultCatalog, and
// DevnetCatalog's emulated twins.
//
// gpu knows no protocol: it must not import challenge, scoring, p2p or node.
// The challenge package imports gpu, never the reverse.
package gpu
