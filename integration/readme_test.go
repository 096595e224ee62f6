package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeMainCommand returns the first command of README.md's first sh
// block (the main job), its comment removed.
func readmeMainCommand(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```sh\n")
	if !ok {
		t.Fatal("README.md has no sh block")
	}
	line, _, _ := strings.Cut(rest, "\n")
	cmd, _, _ := strings.Cut(line, "#")
	return strings.TrimSpace(cmd)
}

// TestReadmeMainJob runs README.md's first command, the main job, as a
// newcomer would from the repository root: it must exit 0 and rank the
// adversaries below the honest peers, and while it runs the live page
// and API it prints must answer.
func TestReadmeMainJob(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README's devnet, about 70 s")
	}
	line := readmeMainCommand(t)
	if !strings.HasPrefix(line, "go run ./cmd/poai devnet") {
		t.Fatalf("README's main job is %q, not a devnet", line)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir = ".."
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url := regexp.MustCompile(`live page and API of \S+ \(\S+\) at (http://\S+/)`)
	var log strings.Builder
	served := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		l := sc.Text()
		log.WriteString(l + "\n")
		if m := url.FindStringSubmatch(l); m != nil && !served {
			served = true
			resp, err := http.Get(m[1] + "api/v1/status")
			if err != nil {
				t.Errorf("status at %s: %v", m[1], err)
				continue
			}
			var st struct {
				PeerID string `json:"peer_id"`
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err := json.Unmarshal(body, &st); err != nil || st.PeerID == "" {
				t.Errorf("status: %d %.200q (%v)", resp.StatusCode, body, err)
			}
		}
	}
	err = cmd.Wait()
	out := log.String()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, tail(out, 40))
	}
	if !served {
		t.Errorf("the devnet printed no live page URL:\n%s", tail(out, 40))
	}
	if !strings.Contains(out, "devnet: every adversary scores below every honest peer") {
		t.Errorf("the main job did not separate the adversaries:\n%s", tail(out, 40))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
