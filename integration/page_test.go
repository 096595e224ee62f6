package integration

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/node/devnet"
)

// TestLivePageInChromium serves a devnet node's live page and loads it in
// headless Chromium: the rendered graph must show every other peer, and the
// lazy adversary must be drawn as a bad (red) peer.
func TestLivePageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet and a browser")
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (Debian package chromium; .ci/run installs it)")
	}
	d, err := devnet.Start(t.Context(), devnet.Config{
		Nodes: 4, Adversaries: map[node.Role]int{node.RoleLazy: 1}, DataDir: t.TempDir(),
		Target: 250 * time.Millisecond, EpochLength: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	observer := d.Nodes[0]
	lazy := d.Nodes[3]
	if lazy.Role() != node.RoleLazy {
		t.Fatalf("node 3 is %s", lazy.Role())
	}
	deadline := time.Now().Add(60 * time.Second)
	caught := func() bool {
		pt, ok := observer.Book().PeerTrust(lazy.ID().String())
		return ok && pt.Bad > 0.5 && pt.Score < 0.2
	}
	for !caught() && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	if pt, _ := observer.Book().PeerTrust(lazy.ID().String()); !caught() {
		t.Fatalf("the lazy peer is not caught: %+v", pt)
	}
	srv := httptest.NewServer(observer.APIHandler(""))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	profile := t.TempDir()
	shot := os.Getenv("POAI_SCREENSHOT") // set to a path to keep a picture of the page
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--window-size=1280,800", "--virtual-time-budget=4000"}
	if shot != "" {
		if out, err := exec.CommandContext(ctx, browser, append(args, "--screenshot="+shot, srv.URL+"/")...).CombinedOutput(); err != nil {
			t.Fatalf("screenshot: %v\n%s", err, out)
		}
	}
	out, err := exec.CommandContext(ctx, browser, append(args, "--dump-dom", srv.URL+"/")...).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	peerEl := regexp.MustCompile(`<g class="peer([^"]*)" data-peer="([^"]+)" data-score="([^"]+)"`)
	seen := map[string]string{}
	scores := map[string]float64{}
	for _, m := range peerEl.FindAllStringSubmatch(dom, -1) {
		seen[m[2]] = m[1]
		scores[m[2]], _ = strconv.ParseFloat(m[3], 64)
	}
	for _, n := range d.Nodes {
		id := n.ID().String()
		class, ok := seen[id]
		if !ok {
			t.Errorf("peer %s (%s) missing from the page; peers drawn: %v", n.ID(), n.Role(), seen)
			continue
		}
		// The page marks a peer bad when its score is under 0.5: it must
		// draw what the API says, and the caught lazy peer must be bad.
		// (An honest peer with little trust yet can be under 0.5 too.)
		if bad := strings.Contains(class, "bad"); bad != (scores[id] >= 0 && scores[id] < 0.5) {
			t.Errorf("peer %s (%s) with score %.3f drawn with class %q", n.ID(), n.Role(), scores[id], class)
		}
		if n == lazy && !strings.Contains(class, "bad") {
			t.Errorf("the caught lazy peer is not drawn bad (class %q)", class)
		}
	}
	if !strings.Contains(dom, "peers,") {
		t.Errorf("status line missing: the page did not finish a refresh")
	}
	// The merged graph: mesh links between peers other than the observer
	// (from the views they share), each with its gossipsub score.
	edge := regexp.MustCompile(`<line [^>]*class="mesh( reported)?[^"]*" data-from="([^"]+)" data-to="([^"]+)" data-score="(-?[0-9.]+)"`)
	foreign := 0
	for _, m := range edge.FindAllStringSubmatch(dom, -1) {
		if m[2] != observer.ID().String() && m[3] != observer.ID().String() {
			foreign++
			if m[1] == "" {
				t.Errorf("edge %s -> %s from a shared view not marked reported", m[2], m[3])
			}
		}
	}
	if foreign == 0 {
		t.Errorf("no mesh link between two other peers: the page shows one node's star, not the network")
	}
	if !regexp.MustCompile(`<text class="edge-score"[^>]*>-?[0-9]+\.[0-9]</text>`).MatchString(dom) {
		t.Errorf("no edge labelled with its gossipsub score")
	}
	// The integrity-over-epochs plot, with labelled axes and a line per peer.
	for _, label := range []string{">epoch</text>", ">integrity score</text>"} {
		if !strings.Contains(dom, `class="axis-label"`) || !strings.Contains(dom, label) {
			t.Errorf("plot axis label %q missing", label)
		}
	}
	if !strings.Contains(dom, `class="trust" data-peer="`+lazy.ID().String()+`"`) {
		t.Errorf("no integrity line for the lazy peer in the plot")
	}
}
