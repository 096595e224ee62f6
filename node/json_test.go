package node

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/poai-network/poai/gpu"
)

// snakeKeys reports every key of a JSON document that is not snake_case.
func snakeKeys(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var bad []string
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, v := range x {
				if strings.ToLower(k) != k || strings.ContainsAny(k, "- ") {
					bad = append(bad, path+"/"+k)
				}
				walk(path+"/"+k, v)
			}
		case []any:
			for _, v := range x {
				walk(path+"[]", v)
			}
		}
	}
	walk("", doc)
	return bad
}

// TestJSONIsSnakeCase: the devnet report and the API's status, filled in,
// name every field in snake_case.
func TestJSONIsSnakeCase(t *testing.T) {
	r := Report{Schema: ReportSchema, Measured: gpu.Throughput{Int8TOPS: 1}, Peers: []PeerReport{{}}, Emulator: &EmulatorReport{}}
	st := StatusView{Stats: Stats{Issued: 1}}
	for name, v := range map[string]any{"devnet report": r, "status": st, "peers": []PeerView{{}}} {
		if bad := snakeKeys(t, v); len(bad) > 0 {
			t.Errorf("%s: keys not in snake_case: %v", name, bad)
		}
	}
}
