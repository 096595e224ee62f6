package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeBlocks returns the sh blocks of README.md, each with its line
// continuations joined and its comments removed.
func readmeBlocks(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]string
	rest := string(b)
	for {
		_, after, ok := strings.Cut(rest, "```sh\n")
		if !ok {
			return blocks
		}
		body, tail, _ := strings.Cut(after, "```")
		rest = tail
		var lines []string
		for _, l := range strings.Split(strings.ReplaceAll(body, "\\\n", " "), "\n") {
			if cmd, _, _ := strings.Cut(l, " #"); strings.TrimSpace(cmd) != "" {
				lines = append(lines, strings.TrimSpace(cmd))
			}
		}
		blocks = append(blocks, lines)
	}
}

// readmeScript turns a README block into a script a test can run: the
// binaries prebuilt in bin, long runs shortened, fixed paths under tmp,
// placeholders filled, a foreground daemon sent to the background for
// 60 s, each command after background daemons run once their APIs answer,
// the browser replaced by a request for the page, and every background
// job stopped when the script ends.
func readmeScript(lines []string, bin, tmp string) string {
	poai, sim := filepath.Join(bin, "poai"), filepath.Join(bin, "poai-sim")
	repl := strings.NewReplacer(
		"go run ./cmd/poai-sim", sim, "go run ./cmd/poai ", poai+" ", "./poai ", poai+" ",
		"/tmp/a", filepath.Join(tmp, "a"), "/tmp/b", filepath.Join(tmp, "b"), "/tmp/sim", filepath.Join(tmp, "sim"),
		"<B's peer ID>", `$(`+poai+` init --data-dir `+filepath.Join(tmp, "b")+` | awk '/peer ID/{print $3}')`,
		"/p2p/12D3KooW...", `/p2p/$(`+poai+` init --data-dir `+filepath.Join(tmp, "far")+` | awk '/peer ID/{print $3}')`,
	)
	duration := regexp.MustCompile(`--duration \S+`)
	apiAddr := regexp.MustCompile(`--api-addr (\S+)`)
	var out []string
	out = append(out, "set -e", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT")
	var apis []string // the APIs of the daemons running in the background
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "go build -o poai"):
			continue // prebuilt
		case strings.HasPrefix(l, "xdg-open "):
			url := strings.TrimSpace(strings.TrimPrefix(l, "xdg-open "))
			host := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
			ip, port, _ := strings.Cut(host, ":")
			l = fmt.Sprintf(`exec 3<>/dev/tcp/%s/%s && printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' >&3 && head -1 <&3 | grep -q ' 200 '`, ip, port, host)
			out = append(out, l)
			continue
		}
		l = repl.Replace(l)
		l = duration.ReplaceAllString(l, "--duration 15s")
		l = strings.ReplaceAll(strings.ReplaceAll(l, "--epochs 10", "--epochs 2"), "--peers 200", "--peers 24")
		daemon := strings.HasPrefix(l, poai+" run ")
		if daemon {
			api := "127.0.0.1:5280"
			if m := apiAddr.FindStringSubmatch(l); m != nil {
				api = m[1]
			}
			apis = append(apis, api)
			l = "timeout 60 " + strings.TrimSuffix(l, "&") + " &"
		} else if len(apis) > 0 {
			// Wait for the daemons' APIs, each to know every daemon
			// of the block (its own claim included).
			for _, a := range apis {
				out = append(out, fmt.Sprintf(`for i in $(seq 150); do [ "$(%s peers --api http://%s 2>/dev/null | grep -c 12D3)" -ge %d ] && break; sleep 0.2; done`, poai, a, len(apis)))
			}
			apis = nil
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// TestReadmeCommandBlocks runs every command block of README.md but the
// first (its main job is TestReadmeMainJob's, and its other command is
// this test suite), as a newcomer would from the repository root, on a
// fresh data directory: each must exit 0. Long runs are cut to 15 s, the
// sim to 24 peers and 2 epochs.
func TestReadmeCommandBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every README command block, devnets included, about 3 minutes")
	}
	bin, tmp, home := t.TempDir(), t.TempDir(), t.TempDir()
	for _, c := range []string{"poai", "poai-sim"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, c), "../cmd/"+c).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, out)
		}
	}
	blocks := readmeBlocks(t)
	if len(blocks) < 2 {
		t.Fatalf("README.md has %d sh blocks", len(blocks))
	}
	for i, b := range blocks[1:] {
		script := readmeScript(b, bin, tmp)
		t.Run(fmt.Sprint("block", i+2), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-c", script)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "HOME="+home)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v after %v\nscript:\n%s\noutput:\n%s", err, time.Since(start).Round(time.Second), script, tail(string(out), 40))
			}
			t.Logf("%d commands in %v", len(b), time.Since(start).Round(time.Second))
		})
	}
}
