package node

import (
	"errors"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// conduct is how a node acts on the protocol beyond announcing its claim:
// what it does with each topic's messages (follow challenges, prove its
// own, verify and attest, honour requests) and with the challenger slots
// the schedule gives it. The node consumes it where it joins the topics
// (Start) and where it issues a scheduled challenge (tracker.issue).
// honestConduct does what the protocol asks; an ADVERSARY role may do
// less (sybilFlood: nothing at all).
type conduct interface {
	// handler returns the function that handles a message of topic (a
	// base topic name, p2p.Topic*), given the honest one.
	handler(topic string, honest func(peer.ID, decoded, time.Time)) func(peer.ID, decoded, time.Time)
	// issue acts on this node's challenger slot for target in epoch e.
	issue(tk *tracker, e uint64, target peer.ID) (cid.Cid, error)
}

// conductOf returns the conduct of role.
func conductOf(r Role) conduct {
	if r == RoleSybilFlood {
		return sybilFlood{}
	}
	return honestConduct{}
}

// honestConduct handles every message as the protocol says and issues
// every challenge it is scheduled for.
type honestConduct struct{}

func (honestConduct) handler(_ string, honest func(peer.ID, decoded, time.Time)) func(peer.ID, decoded, time.Time) {
	return honest
}

func (honestConduct) issue(tk *tracker, e uint64, target peer.ID) (cid.Cid, error) {
	return tk.issueTry(e, target, cid.Undef)
}

// errSlotOnly is why a sybil-flood identity issues nothing.
var errSlotOnly = errors.New("sybil-flood identity: takes the slot, issues nothing")

// sybilFlood (adversary) is RoleSybilFlood's conduct: its node announces
// its claim (the loop does that before any handler runs) and ignores
// every message, its own claim's echo included, so it follows no
// challenge — it proves none of its own, verifies and attests none — and
// issues none of the challenges it is scheduled for. Each identity costs
// its operator a host and a claim a second; what it takes from the
// network is the slots the schedule gives it (challenge/schedule.go).
type sybilFlood struct{}

func (sybilFlood) handler(string, func(peer.ID, decoded, time.Time)) func(peer.ID, decoded, time.Time) {
	return func(peer.ID, decoded, time.Time) {}
}

func (sybilFlood) issue(*tracker, uint64, peer.ID) (cid.Cid, error) { return cid.Undef, errSlotOnly }
