package node

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// VoidRecord is a challenge this node followed and voided instead of
// judging, with the cause and the peers it blames (GET /api/v1/voids).
type VoidRecord struct {
	Challenge string    `json:"challenge"`
	Target    string    `json:"target"`
	Epoch     uint64    `json:"epoch"`
	At        time.Time `json:"at"`
	// Cause is "reveal" (the target committed in time, but the
	// challenger's secret or the share of a verifier its commitment lists
	// did not reach this node in time) or "duplicate" (the challenger sent
	// two challenges of one target in one epoch).
	Cause string `json:"cause"`
	// Culprits are the peers blamed: the challenger, or the verifiers that
	// withheld their shares. Each is contradicted in this node's book.
	Culprits []string `json:"culprits"`
}

// maxVoidRecords is how many voids a node remembers.
const maxVoidRecords = 64

// voidLog is the loop goroutine's ring of the latest voids, oldest first.
type voidLog struct{ recs []VoidRecord }

func (l *voidLog) add(t *tracked, cause string, culprits []peer.ID) {
	r := VoidRecord{Challenge: t.cid.String(), Target: t.target.String(), Epoch: t.ch.GetEpoch(), At: time.Now().UTC(), Cause: cause, Culprits: []string{}}
	for _, p := range culprits {
		r.Culprits = append(r.Culprits, p.String())
	}
	l.recs = append(l.recs, r)
	if len(l.recs) > maxVoidRecords {
		l.recs = l.recs[1:]
	}
}

// Voids returns the latest challenges this node voided, most recent
// first (at most 64).
func (n *Node) Voids() []VoidRecord {
	out := []VoidRecord{}
	n.ev.snapshot(func() {
		for i := len(n.tk.voids.recs) - 1; i >= 0; i-- {
			out = append(out, n.tk.voids.recs[i])
		}
	})
	return out
}
