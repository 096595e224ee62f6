package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/scoring"
)

func TestAPI(t *testing.T) {
	n, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.Book().Record(scoring.Attestation{Challenge: "c", Target: "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN", Verifier: n.ID().String(),
		Verdict: scoring.VerdictPass, Accuracy: 1, LatencyMS: 5, DeadlineMS: 10})
	srv := httptest.NewServer(n.APIHandler("s3cret"))
	defer srv.Close()

	get := func(path, token string, v any) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+APIVersion+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if v != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode
	}
	if code := get("/status", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code := get("/status", "wrong", nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	var st StatusView
	if code := get("/status", "s3cret", &st); code != http.StatusOK || st.PeerID != n.ID().String() || len(st.Addrs) == 0 {
		t.Fatalf("status %d %+v", code, st)
	}
	var ss []scoring.Summary
	if code := get("/scores", "s3cret", &ss); code != http.StatusOK || len(ss) != 1 || ss[0].Challenges != 1 || ss[0].Passed != 1 {
		t.Fatalf("scores %d %+v", code, ss)
	}
	if code := get("/scores?peer=nonsense", "s3cret", nil); code != http.StatusBadRequest {
		t.Fatalf("bad peer ID: %d", code)
	}
	var as []scoring.Recorded
	if code := get("/attestations?peer=12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN", "s3cret", &as); code != http.StatusOK || len(as) != 1 || as[0].Verdict != scoring.VerdictPass {
		t.Fatalf("attestations %d %+v", code, as)
	}
	if code := get("/attestations", "s3cret", nil); code != http.StatusBadRequest {
		t.Fatalf("attestations without a peer: %d", code)
	}
	var ps []PeerView
	if code := get("/peers", "s3cret", &ps); code != http.StatusOK {
		t.Fatalf("peers %d", code)
	}
}

func TestAPITokenRequiredBeyondLoopback(t *testing.T) {
	c := DefaultConfig()
	c.API.Listen = "0.0.0.0:5280"
	if c.Validate() == nil {
		t.Fatal("API on all interfaces without a token accepted")
	}
	c.API.Token = "x"
	if c.Validate() == nil {
		t.Fatal("a one-character token accepted")
	}
	c.API.Token = strings.Repeat("k", MinTokenBytes)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Metrics.Listen = "0.0.0.0:9464"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.API.Token = ""
	c.API.Listen = "127.0.0.1:5280"
	if c.Validate() == nil {
		t.Fatal("/metrics on all interfaces without a token accepted")
	}
	c.Metrics.Listen = "127.0.0.1:9464"
	c.API = APIConfig{Listen: "127.0.0.1:5280"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsIncludeLibp2p(t *testing.T) {
	c := testConfig()
	c.Metrics.Listen = "127.0.0.1:0" // any non-empty value turns libp2p's metrics on
	n, err := New(t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, name := range []string{"poai_challenges_issued_total", "poai_live_peers", "poai_store_bytes", "poai_challenge_latency_seconds", "libp2p_rcmgr_connections", "libp2p_identify_addrs_count", "libp2p_eventbus_events_emitted_total"} {
		if !have[name] {
			var names []string
			for k := range have {
				names = append(names, k)
			}
			t.Fatalf("metric %s missing; have %v", name, names)
		}
	}
}

// startNode starts a node from c (testConfig with edits) whose first
// bootstrap peer is bootstrap, if any, and closes it when the test ends.
func startNode(t *testing.T, c Config, bootstrap *Node, opts ...Option) *Node {
	t.Helper()
	if bootstrap != nil {
		c.P2P.Bootstrap = []string{bootstrap.Addrs()[0].String()}
	}
	n, err := New(t.TempDir(), c, append([]Option{WithWarmup(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestTopologyShowsMesh(t *testing.T) {
	a := startNode(t, testConfig(), nil)
	b := startNode(t, testConfig(), a)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		topo := a.Topology()
		for topic, peers := range topo.Mesh {
			for _, p := range peers {
				if p.PeerID == b.ID().String() && len(topo.Connections) > 0 {
					t.Logf("mesh of %s holds %s", topic, p.PeerID)
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("b never joined a's mesh: %+v", a.Topology())
}

// TestGrafanaDashboard: the dashboard in docs/grafana is valid JSON and every
// metric its queries name is one a node exports.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../docs/grafana/poai.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	c := testConfig()
	c.Metrics.Listen = "127.0.0.1:0"
	n, err := New(t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// Vector metrics appear once they have a series: give each one.
	n.metrics.received.WithLabelValues("pass")
	n.metrics.score.WithLabelValues("x")
	n.metrics.answered.WithLabelValues("answered")
	n.metrics.messages.WithLabelValues("t", "reject", "malformed")
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	name := regexp.MustCompile(`\b(poai|libp2p)_[a-z0-9_]+`)
	checked := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !have[base] {
					t.Errorf("panel %q queries %s, which no node exports", p.Title, m)
				}
				checked++
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d metric references found", checked)
	}
}

func TestChallengeNowRules(t *testing.T) {
	n, err := New(t.TempDir(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.ChallengeNow(n.ID()); err == nil {
		t.Fatal("a node challenged itself")
	}
	other := randomID(t)
	if _, err := n.ChallengeNow(other); err == nil {
		t.Fatal("challenged a peer whose claim it never saw")
	}
	srv := httptest.NewServer(n.APIHandler(""))
	defer srv.Close()
	resp, err := http.Post(srv.URL+APIVersion+"/challenges", "application/json", strings.NewReader(`{"peer":"nope"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad peer ID: %d", resp.StatusCode)
	}
}

func TestChallengeNowIssues(t *testing.T) {
	a := startNode(t, testConfig(), nil)
	b := startNode(t, testConfig(), a)
	if out := challengeNow(t, a, b.ID()); out.CID == "" || out.Requested {
		t.Fatalf("the only possible challenger did not issue: %+v", out)
	}
	if _, err := a.ChallengeNow(b.ID()); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second challenge in the same epoch: %v", err)
	}
}

// TestChallengeRequestReachesScheduledChallenger: a node that is not the
// target's scheduled challenger gossips a request, and the scheduled one
// issues the challenge.
func TestChallengeRequestReachesScheduledChallenger(t *testing.T) {
	c := testConfig()
	c.Challenge.EpochLength = Duration(time.Minute) // no scheduled challenge in the test's lifetime
	seed := startNode(t, c, nil)
	nodes := []*Node{seed, startNode(t, c, seed), startNode(t, c, seed)}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		for _, n := range nodes {
			ok = ok && len(n.Peers()) == 3
		}
		if ok {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond) // one gossipsub heartbeat: every topic's mesh is up
	// Pick a target, its scheduled challenger in node 0's view, and a third
	// node to ask.
	target := nodes[0]
	var first []peer.ID
	nodes[0].ev.snapshot(func() {
		now := time.Now()
		first = nodes[0].tk.scheduledChallengers(target.ID(), nodes[0].clock.At(now), now)
	})
	if len(first) == 0 {
		t.Fatal("no scheduled challenger")
	}
	var scheduled, asker *Node
	for _, n := range nodes[1:] {
		if n.ID() == first[0] {
			scheduled = n
		} else {
			asker = n
		}
	}
	out, err := asker.ChallengeNow(target.ID())
	if err != nil || !out.Requested || out.Challengers[0] != scheduled.ID().String() {
		t.Fatalf("asking a non-scheduled node: %+v %v", out, err)
	}
	for time.Now().Before(deadline) && scheduled.Stats().Issued == 0 {
		time.Sleep(100 * time.Millisecond)
	}
	if scheduled.Stats().Issued == 0 {
		t.Fatalf("the scheduled challenger never honoured the request %+v", out)
	}
}

// TestProofsSayWhy: a target's proof history records the challenge it
// answered, its proof time and opening and the verdicts heard, with no
// check to make when every verdict is a pass; a record's check names what
// failed: the proof, the deadline, the opening, or the verifiers.
func TestProofsSayWhy(t *testing.T) {
	c := testConfig()
	c.Challenge.EpochLength = Duration(time.Minute) // only the challenge made here
	a := startNode(t, c, nil)
	b := startNode(t, c, a)
	challengeNow(t, a, b.ID())
	deadline := time.Now().Add(15 * time.Second)
	var rs []ProofRecord
	for time.Now().Before(deadline) {
		if rs = b.Proofs(); len(rs) == 1 && len(rs[0].Verdicts) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(rs) != 1 || rs[0].Challenger != a.ID().String() || rs[0].ProveMS <= 0 || !rs[0].Opened || rs[0].Verdicts[a.ID().String()] != "pass" || rs[0].Check != "" {
		t.Fatalf("b's proof history: %+v", rs)
	}
	if got := a.Proofs(); len(got) != 0 {
		t.Fatalf("the challenger holds proofs of its own: %+v", got)
	}
	for _, r := range []struct {
		rec  ProofRecord
		want string
	}{
		{ProofRecord{ProveError: "context deadline exceeded"}, "did not complete"},
		{ProofRecord{DeadlineMS: 100, ProveMS: 250}, "after a 100 ms deadline"},
		{ProofRecord{DeadlineMS: 100, ProveMS: 50, ReceivedAt: time.Now().Add(-time.Minute)}, "never opened"},
		{ProofRecord{DeadlineMS: 100, ProveMS: 50, Opened: true, Verdicts: map[string]string{"x": "wrong_answer", "y": "wrong_answer"}}, "every verifier"},
		{ProofRecord{DeadlineMS: 100, ProveMS: 50, Opened: true, Verdicts: map[string]string{"x": "wrong_answer", "y": "pass"}}, "1 of 2 verifiers"},
	} {
		if got := r.rec.check(); !strings.Contains(got, r.want) {
			t.Errorf("%+v: check %q, want %q", r.rec, got, r.want)
		}
	}
}

// TestDrain: a target that starts draining the moment it is challenged
// still proves and opens before Drain returns, and a draining node issues
// nothing; an idle node drains at once.
func TestDrain(t *testing.T) {
	c := testConfig()
	c.Challenge.EpochLength = Duration(time.Minute) // only the challenges made here
	a := startNode(t, c, nil)
	b := startNode(t, c, a)
	challengeNow(t, a, b.ID())
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && len(b.Proofs()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	t.Logf("opened when the drain began: %v", b.Proofs()[0].Opened)
	if err := b.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := b.Proofs(); len(rs) != 1 || !rs[0].Opened {
		t.Fatalf("drained before its proof was opened: %+v", rs)
	}
	if _, err := b.ChallengeNow(a.ID()); !errors.Is(err, ErrDraining) {
		t.Fatalf("a draining node challenged: %v", err)
	}
	start := time.Now()
	if err := a.Drain(ctx); err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("the challenger's drain: %v after %v", err, time.Since(start))
	}
}

// TestVerdictSaysWhy: a lazy target's wrong answer is attested with the
// rows found wrong and the CIDs of its commitment and opening, which the
// API's attestations and the target's own proof history show.
func TestVerdictSaysWhy(t *testing.T) {
	c := testConfig()
	c.Challenge.EpochLength = Duration(time.Minute) // only the challenge made here
	c.Challenge.Workloads = []string{"int8"}
	a := startNode(t, c, nil)
	b := startNode(t, c, a, WithRole(RoleLazy))
	challengeNow(t, a, b.ID())
	var got []scoring.Recorded
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if got, _ = a.Book().Attestations(b.ID().String(), 10); len(got) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != 1 || got[0].Verdict != scoring.VerdictWrongAnswer {
		t.Fatalf("attestations of the lazy target: %+v", got)
	}
	if !regexp.MustCompile(`^rows? [0-9]+(, [0-9]+)*(, …)? of C wrong: [0-9]+ of [0-9]+ opened`).MatchString(got[0].Reason) {
		t.Errorf("reason %q does not name the wrong rows", got[0].Reason)
	}
	if len(got[0].Evidence) != 2 {
		t.Fatalf("evidence %v: want the commitment's and the opening's CIDs", got[0].Evidence)
	}
	for _, e := range got[0].Evidence {
		if _, err := cid.Decode(e); err != nil {
			t.Errorf("evidence %q: %v", e, err)
		}
	}
	var rs []ProofRecord
	for time.Now().Before(deadline) {
		if rs = b.Proofs(); len(rs) == 1 && len(rs[0].Reasons) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(rs) != 1 || rs[0].Reasons[a.ID().String()] != got[0].Reason || !strings.Contains(rs[0].Check, "they say") {
		t.Fatalf("the target's proof history does not carry the reason: %+v", rs)
	}
}

// challengeNow has a challenge target now, retrying while a has not yet
// counted target live.
func challengeNow(t *testing.T, a *Node, target peer.ID) ChallengeOutcome {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := a.ChallengeNow(target)
		if err == nil {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
