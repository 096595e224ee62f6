package devnet

import (
	"testing"

	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/internal/jsoncase"
	"github.com/poai-network/poai/node"
)

func TestParseAdversaries(t *testing.T) {
	m, err := ParseAdversaries("slow=2, lazy=1,replay=0")
	if err != nil || m[node.RoleSlow] != 2 || m[node.RoleLazy] != 1 {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"slow", "fast=1", "honest=2", "lazy=-1", "lazy=x"} {
		if _, err := ParseAdversaries(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestReportIsSnakeCase: the devnet report, filled in, names every field
// in snake_case.
func TestReportIsSnakeCase(t *testing.T) {
	r := Report{Schema: ReportSchema, Measured: gpu.Throughput{Int8TOPS: 1}, Peers: []PeerReport{{}}, Emulator: &EmulatorReport{}}
	if bad, err := jsoncase.NotSnake(r); err != nil || len(bad) > 0 {
		t.Errorf("keys not in snake_case: %v (%v)", bad, err)
	}
}
