package node

import (
	"testing"

	"github.com/poai-network/poai/internal/jsoncase"
)

// TestJSONIsSnakeCase: the API's status and peers, filled in, name every
// field in snake_case.
func TestJSONIsSnakeCase(t *testing.T) {
	st := StatusView{Stats: Stats{Issued: 1}}
	for name, v := range map[string]any{"status": st, "peers": []PeerView{{}}} {
		if bad, err := jsoncase.NotSnake(v); err != nil || len(bad) > 0 {
			t.Errorf("%s: keys not in snake_case: %v (%v)", name, bad, err)
		}
	}
}
