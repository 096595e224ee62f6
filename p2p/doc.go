// Package p2p owns poai's networking: the libp2p host (TCP and QUIC), the
// persistent Ed25519 identity, gossipsub with strict signing and
// content-addressed message IDs (MessageID), topic validators, bootstrap
// dialing and mDNS discovery.
//
// p2p carries bytes. Validators and handlers are functions the node
// injects; p2p must not import challenge, scoring, gpu or node.
package p2p
