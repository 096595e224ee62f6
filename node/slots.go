package node

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// slotLedger counts, in one node's view, the challenger slots the schedule
// gave each peer (one a live target and epoch: the first of the target's
// challenger ranking, whether it issued or not) and the verifier slots of
// the challenges this node followed (the verifiers it computed for each),
// by epoch. devnet's and sim's reports read it to show who holds the
// network's slots, overall and from an epoch on.
type slotLedger struct {
	mu                   sync.Mutex
	challenger, verifier map[peer.ID][]int // by epoch
}

// note counts, in epoch e, one challenger slot (challenger, unless "")
// and the verifier slots of verifiers.
func (l *slotLedger) note(e uint64, challenger peer.ID, verifiers []peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.challenger == nil {
		l.challenger, l.verifier = map[peer.ID][]int{}, map[peer.ID][]int{}
	}
	add := func(m map[peer.ID][]int, p peer.ID) {
		s := m[p]
		if uint64(len(s)) <= e {
			s = append(s, make([]int, int(e)+1-len(s))...)
		}
		s[e]++
		m[p] = s
	}
	if e > 1<<20 {
		return // not an epoch of this network
	}
	if challenger != "" {
		add(l.challenger, challenger)
	}
	for _, v := range verifiers {
		add(l.verifier, v)
	}
}

// counts returns the challenger and verifier slots counted for p in
// epochs from to to − 1.
func (l *slotLedger) counts(p peer.ID, from, to uint64) (challenger, verifier int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sum := func(s []int) (n int) {
		for e := from; e < to && e < uint64(len(s)); e++ {
			n += s[e]
		}
		return n
	}
	return sum(l.challenger[p]), sum(l.verifier[p])
}
