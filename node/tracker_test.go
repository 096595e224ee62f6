package node

import "testing"

// TestVerdictTransitions: every pair of verdict states, and which moves
// advance allows: undecided → checking → undecided, either → settled, and
// nothing out of settled.
func TestVerdictTransitions(t *testing.T) {
	allowed := map[[2]verdictState]bool{
		{undecided, checking}: true,
		{checking, undecided}: true,
		{undecided, settled}:  true,
		{checking, settled}:   true,
	}
	names := map[verdictState]string{undecided: "undecided", checking: "checking", settled: "settled"}
	for _, from := range []verdictState{undecided, checking, settled} {
		for _, to := range []verdictState{undecided, checking, settled} {
			tr := &tracked{state: from}
			moved := tr.advance(to)
			want := allowed[[2]verdictState{from, to}]
			if moved != want {
				t.Errorf("%s → %s: advance reported %v, want %v", names[from], names[to], moved, want)
			}
			if got := tr.state; (want && got != to) || (!want && got != from) {
				t.Errorf("%s → %s: state is %s", names[from], names[to], names[got])
			}
			if tr.settled() != (tr.state == settled) || tr.checking() != (tr.state == checking) {
				t.Errorf("%s: settled() %v checking() %v", names[tr.state], tr.settled(), tr.checking())
			}
		}
	}
}
