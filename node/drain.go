package node

import (
	"context"
	"errors"
	"time"
)

// ErrDraining reports a challenge this node will not issue: it is
// draining before it stops (Node.Drain).
var ErrDraining = errors.New("node is draining before it stops: it issues no new challenge")

// drainPoll is how often Drain looks at what is left to do.
const drainPoll = 100 * time.Millisecond

// Drain prepares the node to stop without failing what it took on: it
// issues no new challenge (ErrDraining) and returns once every challenge
// it has a duty in is done: proved and opened as the target, revealed as
// the challenger, judged as a verifier; or once a duty's window has
// passed (twice its deadline, the opening grace and a second: what a
// verifier waits before judging a missing answer). It returns ctx's error
// when ctx ends first (an operator's second signal, the drain timeout),
// and nil at once on a node that is not running. Close it afterwards.
func (n *Node) Drain(ctx context.Context) error {
	if !n.ev.snapshot(func() { n.tk.draining = true }) {
		return nil
	}
	for {
		var left int
		if !n.ev.snapshot(func() { left = n.tk.duties(time.Now()) }) {
			return nil
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			n.log.Warn("drain cut short", "duties_left", left, "err", ctx.Err())
			return ctx.Err()
		case <-time.After(drainPoll):
		}
	}
}

// duties counts the tracked challenges in which this node still has
// something to do at now (Drain).
func (tk *tracker) duties(now time.Time) int {
	left := 0
	for _, t := range tk.tracked {
		if now.After(t.receivedAt.Add(2*deadlineOf(t.ch) + openGrace + time.Second)) {
			continue
		}
		switch {
		case t.target == tk.id && !t.opened:
			left++ // to prove and open
		case t.challenger == tk.id && t.secret == nil:
			left++ // to reveal
		case t.verifier && !t.settled():
			left++ // to judge
		}
	}
	return left + len(tk.proveQ)
}
