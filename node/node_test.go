package node

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

func testConfig() Config {
	c := DefaultConfig()
	c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	c.P2P.MDNS = false
	c.Challenge.EpochLength = Duration(2 * time.Second)
	c.Challenge.TargetDuration = Duration(300 * time.Millisecond)
	c.Device.Int8TOPS, c.Device.BF16TFLOPS, c.Device.HashGHps, c.Device.VRAMBytes = 0.001, 0.001, 0.001, 1<<20
	c.Metrics.Listen = ""
	return c
}

func TestRestartKeepsIdentityAndScores(t *testing.T) {
	dir := t.TempDir()
	n, err := New(dir, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	id := n.ID()
	verdicts := []string{scoring.VerdictPass, scoring.VerdictPass, scoring.VerdictPass, scoring.VerdictPass, scoring.VerdictPass, scoring.VerdictWrongAnswer}
	for i, v := range verdicts {
		err := n.Book().Record(scoring.Attestation{Challenge: string(rune('a' + i)), Target: "12D3KooWother", Verifier: id.String(),
			Verdict: v, Accuracy: 1, LatencyMS: 10, DeadlineMS: 100})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Book().Roll(1); err != nil {
		t.Fatal(err)
	}
	score := n.Book().Score("12D3KooWother")
	if score <= 0.3 || score >= 0.8 {
		t.Fatalf("a peer failing 1 of 6 challenges (a wrong answer weighs 4 passes) scores %v", score)
	}
	n2 := restartNode(t, n, dir)
	if n2.ID() != id {
		t.Fatalf("peer ID changed across restart: %s, was %s", n2.ID(), id)
	}
	if got := n2.Book().Score("12D3KooWother"); got != score {
		t.Fatalf("score after restart %v, before %v", got, score)
	}
	if v, ok := n2.Book().Trust(); !ok || v.Epoch != 1 {
		t.Fatalf("trust vector after restart: %v, %+v", ok, v)
	}
	if s, _ := n2.Book().Summarize("12D3KooWother"); s.Challenges != 6 || s.Passed != 5 {
		t.Fatalf("history after restart: %+v", s)
	}
}

func TestStartFailureRollsBack(t *testing.T) {
	dir := t.TempDir()
	c := testConfig()
	c.P2P.Listen = []string{"/ip4/203.0.113.1/tcp/1"} // TEST-NET-3: not a local address, listen fails
	n, err := New(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err == nil {
		n.Close()
		t.Fatal("start succeeded on an unusable listen address")
	}
	// The score store must have been closed by the rollback: opening it
	// again succeeds (Badger holds a directory lock while open).
	b, err := scoring.Open(t.Context(), filepath.Join(dir, ScoresDir), "x", scoring.DefaultParams(), nil)
	if err != nil {
		t.Fatalf("score store still locked after a failed start: %v", err)
	}
	b.Close()
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c := DefaultConfig()
	c.Challenge.Slack = 0.5
	c.Log.Level = "loud"
	c.P2P.Bootstrap = []string{"/ip4/1.2.3.4/tcp/1"}
	c.Challenge.Waves = -1
	c.P2P.TraceRemote = "/ip4/127.0.0.1/tcp/4010"
	err := c.Validate()
	for _, want := range []string{"[challenge] slack", "[log] level", "[p2p] bootstrap", "[challenge] waves", "[p2p] trace_remote"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestConfigRoundTripAndUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ConfigFile)
	c := DefaultConfig()
	c.Challenge.Verifiers = 5
	c.Challenge.EpochLength = Duration(42 * time.Second)
	if err := WriteConfig(path, c); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfig(path, c); err == nil {
		t.Fatal("existing config overwritten")
	}
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Challenge.Verifiers != 5 || got.Challenge.EpochLength.Std() != 42*time.Second {
		t.Fatalf("round trip lost values: %+v", got.Challenge)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "# Claimed dense int8 throughput in TOPS") {
		t.Fatal("written config has no comments")
	}
	os.WriteFile(path, append(b, []byte("\n[p2p2]\nlisten = []\n")...), 0o644)
	if _, err := LoadConfig(path); err == nil {
		t.Fatal("unknown section accepted")
	}
}

func TestSelection(t *testing.T) {
	ids := []peer.ID{"a", "b", "c", "d", "e", "f"}
	v1 := challenge.VerifiersFor(7, "a", "b", challenge.Flat(ids), 3)
	v2 := challenge.VerifiersFor(7, "a", "b", challenge.Flat([]peer.ID{"f", "e", "d", "c", "b", "a"}), 3)
	if len(v1) != 3 || strings.Join(peerStrings(v1), ",") != strings.Join(peerStrings(v2), ",") {
		t.Fatalf("selection depends on input order: %v vs %v", v1, v2)
	}
	for _, v := range v1 {
		if v == "a" || v == "b" {
			t.Fatalf("target or challenger selected: %v", v1)
		}
	}
	// Over many epochs every peer challenges target "a" sometimes, and
	// never "a" itself.
	seen := map[peer.ID]int{}
	for e := uint64(0); e < 500; e++ {
		seen[challenge.ChallengerFor(e, "a", challenge.Flat(ids))]++
	}
	if seen["a"] != 0 || len(seen) != 5 {
		t.Fatalf("challenger distribution %v", seen)
	}
	if got := challenge.VerifiersFor(7, "a", "b", challenge.Flat([]peer.ID{"a", "b"}), 3); len(got) != 1 || got[0] != "b" {
		t.Fatalf("in a network of two the challenger verifies, got %v", got)
	}
}

func peerStrings(ids []peer.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

func TestApplyEnv(t *testing.T) {
	c := DefaultConfig()
	env := map[string]string{
		"POAI_P2P_MDNS":               "false",
		"POAI_P2P_BOOTSTRAP":          "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN, ",
		"POAI_CHALLENGE_EPOCH_LENGTH": "45s",
		"POAI_CHALLENGE_SLACK":        "3.5",
		"POAI_DEVICE_VRAM_BYTES":      "1024",
		"POAI_API_TOKEN":              "t0ken-t0ken-t0ken-t0ken-t0ken-t0",
	}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.P2P.MDNS || len(c.P2P.Bootstrap) != 1 || c.Challenge.EpochLength.Std() != 45*time.Second ||
		c.Challenge.Slack != 3.5 || c.Device.VRAMBytes != 1024 || c.API.Token != "t0ken-t0ken-t0ken-t0ken-t0ken-t0" {
		t.Fatalf("env not applied: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	err := c.ApplyEnv(func(k string) string {
		if k == "POAI_CHALLENGE_SLACK" {
			return "lots"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "POAI_CHALLENGE_SLACK") {
		t.Fatalf("bad value: %v", err)
	}
}

func TestBootstrapProfile(t *testing.T) {
	c := Profiles["bootstrap"]()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.P2P.MDNS || c.P2P.ConnHigh <= DefaultConfig().P2P.ConnHigh || !strings.Contains(strings.Join(c.P2P.Listen, " "), "/tcp/4747") {
		t.Fatalf("bootstrap profile %+v", c.P2P)
	}
	// Not Kubo's (and other libp2p daemons') 4001, in either profile.
	for _, l := range append(c.P2P.Listen, DefaultConfig().P2P.Listen...) {
		if strings.Contains(l, "/4001") {
			t.Errorf("listen address %s uses 4001, Kubo's default port", l)
		}
	}
}

// bareHost starts a libp2p host of poai's p2p package on 127.0.0.1 with a
// fresh key and no mDNS, closed when the test ends: a peer that publishes
// or relays raw messages without being a node; key is its private key.
func bareHost(t *testing.T) (h *p2p.Host, key crypto.PrivKey) {
	t.Helper()
	key, err := p2p.LoadOrCreateKey(filepath.Join(t.TempDir(), "bare.key"))
	if err != nil {
		t.Fatal(err)
	}
	pc := p2p.DefaultConfig()
	pc.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	pc.MDNS = false
	h, err = p2p.New(key, pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, key
}

func TestLoadConfigUnknownKeyPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := WriteConfig(path, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	at := slices.Index(lines, "[challenge]")
	if at < 0 {
		t.Fatalf("no [challenge] section in\n%s", b)
	}
	lines = slices.Insert(lines, at+1, "  epoch_lenght = '30s'")
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
	_, err := LoadConfig(path)
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	want := fmt.Sprintf("line %d, column 3: unknown key \"challenge.epoch_lenght\" (did you mean \"challenge.epoch_length\"?)", at+2)
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q, want it to contain %q and the path", err, want)
	}
	if strings.Contains(err.Error(), "init") {
		t.Fatalf("error %q suggests init", err)
	}
	// A value of the wrong type is placed too.
	lines[at+1] = "verifiers = 'three'"
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line %d, column", at+2)) {
		t.Fatalf("bad value: %v", err)
	}
}

func TestCheckEnv(t *testing.T) {
	ok := []string{"HOME=/root", "POAI_PATH=/x", "POAI_API_TOKEN=t", "POAI_CHALLENGE_EPOCH_LENGTH=30s", "POAI_NETNS_TEST=1"}
	if err := CheckEnv(ok); err != nil {
		t.Fatal(err)
	}
	err := CheckEnv(append(ok, "POAI_CHALENGE_SLACK=2", "POAI_WHATEVER_ELSE_ENTIRELY=1"))
	if err == nil {
		t.Fatal("unknown variables accepted")
	}
	for _, want := range []string{"unknown variable POAI_CHALENGE_SLACK (did you mean POAI_CHALLENGE_SLACK?)", "unknown variable POAI_WHATEVER_ELSE_ENTIRELY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestIssuedCountsOnlyAccepted: a challenge this node's own validator
// refuses (here: an epoch far beyond the current one) is not counted as
// issued, in Stats or in poai_challenges_issued_total; one it accepts is.
func TestIssuedCountsOnlyAccepted(t *testing.T) {
	// A long epoch: no epoch starts during the test, so the node's own
	// schedule issues nothing to the target besides the two challenges
	// made here (with testConfig's 2 s epochs it did, one run in a few).
	cfg := testConfig()
	cfg.Challenge.EpochLength = Duration(time.Hour)
	n := startNode(t, cfg, nil)
	target := randomID(t)
	claim := &pb.DeviceClaim{Model: "amd64 CPU", Int8Tops: 0.001, Bf16Tflops: 0.001, HashGhps: 0.001, VramBytes: 1 << 20, IssuedUnixMs: time.Now().UnixMilli()}
	_, claimCID, err := challenge.MessageCID(claim)
	if err != nil {
		t.Fatal(err)
	}
	var cur uint64
	var refusedErr, acceptedErr error
	n.onLoop(func() {
		now := time.Now()
		n.claims.onClaim(target, decoded{msg: claim, cid: claimCID}, now)
		cur = n.clock.At(now)
		_, refusedErr = n.tk.issueTry(cur+1000, target, cid.Undef)
	})
	if refusedErr != nil {
		t.Fatalf("issueTry refused before publishing: %v", refusedErr)
	}
	time.Sleep(500 * time.Millisecond) // the publishing goroutine
	if got := n.Stats().Issued; got != 0 {
		t.Fatalf("a challenge the node's own validator refused was counted as issued (%d)", got)
	}
	if got := testutil.ToFloat64(n.metrics.issued); got != 0 {
		t.Fatalf("poai_challenges_issued_total is %v after a refused challenge", got)
	}
	n.onLoop(func() { _, acceptedErr = n.tk.issueTry(n.clock.At(time.Now()), target, cid.Undef) })
	if acceptedErr != nil {
		t.Fatal(acceptedErr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n.Stats().Issued == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := n.Stats().Issued; got != 1 {
		t.Fatalf("an accepted challenge counted %d times", got)
	}
	if got := testutil.ToFloat64(n.metrics.issued); got != 1 {
		t.Fatalf("poai_challenges_issued_total is %v, want 1", got)
	}
}

// restartNode closes n and starts a new node on its data directory dir
// with testConfig, closed when the test ends.
func restartNode(t *testing.T, n *Node, dir string) *Node {
	t.Helper()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2, err := New(dir, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := n2.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n2.Close() })
	return n2
}

// syncBuffer is a bytes.Buffer safe for a logger's goroutines and a
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEpochLine: two nodes at the default log level each write one line
// per epoch at info, with the peers, what they issued, answered and
// attested, and their own score; an operator is never left with minutes of
// silence.
func TestEpochLine(t *testing.T) {
	var logs syncBuffer
	a := startNode(t, testConfig(), nil)
	c := testConfig()
	c.P2P.Bootstrap = []string{a.Addrs()[0].String()}
	n, err := New(t.TempDir(), c, WithWarmup(200*time.Millisecond), WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	var lines []string
	deadline := time.Now().Add(4 * time.Duration(c.Challenge.EpochLength))
	for len(lines) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		lines = nil
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "msg=epoch ") {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) < 2 {
		t.Fatalf("%d epoch lines at info in %v:\n%s", len(lines), 4*time.Duration(c.Challenge.EpochLength), logs.String())
	}
	for _, f := range []string{"epoch=", "peers=", "issued=", "answered=", "prove_failed=", "verdicts_received=", "attested=", "verdicts_given=", "own_score="} {
		if !strings.Contains(lines[1], f) {
			t.Errorf("epoch line without %s: %s", f, lines[1])
		}
	}
	t.Log(lines[1])
}
