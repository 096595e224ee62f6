// Package integration holds end-to-end tests: real poai nodes with real
// libp2p hosts on loopback, real gossipsub and real Badger stores on disk.
package integration
