package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub_pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/poai-network/poai/node/devnet"
	"github.com/poai-network/poai/p2p"
)

// interopDuration is how long TestJSInterop keeps its js-libp2p peer in the
// devnet: go test -run TestJSInterop -timeout 20m ./integration/ -args
// -interop-duration 10m (or POAI_INTEROP_DURATION=10m). 0 means 60 s.
var interopDuration = flag.Duration("interop-duration", 0, "how long TestJSInterop's js-libp2p peer stays in the devnet (0: $POAI_INTEROP_DURATION, else 60s)")

// interopLine is one line of integration/interop/peer.mjs: a message report,
// or an event (started, summary).
type interopLine struct {
	Event string `json:"event"`

	// started and summary
	PeerID string `json:"peer_id"`

	// a message
	Topic           string `json:"topic"`
	Type            string `json:"type"`
	From            string `json:"from"`
	Seqno           string `json:"seqno"`
	ID              string `json:"id"`
	IDOK            *bool  `json:"id_ok"`
	SigOK           *bool  `json:"sig_ok"`
	DecodedOK       *bool  `json:"decoded_ok"`
	CanonicalOK     *bool  `json:"canonical_ok"`
	AuthorOK        *bool  `json:"author_ok"`
	CommitmentSigOK *bool  `json:"commitment_sig_ok"`
	DataHex         string `json:"data_hex"`
	Error           string `json:"error"`

	// summary
	Messages  int                       `json:"messages"`
	Failures  int                       `json:"failures"`
	PerTopic  map[string]map[string]int `json:"per_topic"`
	Mesh      map[string][]string       `json:"mesh"`
	Connected []string                  `json:"connected"`
	Scores    map[string]float64        `json:"scores"`
}

// TestJSInterop runs a js-libp2p gossipsub peer (integration/interop,
// pinned in its package-lock.json) in a four-node devnet: the peer knows
// nothing of poai but docs/protocol.md's topics, message ID and signing
// rules. It must join every node's mesh, relay without losing gossipsub
// score, and find every message it receives well signed, with the message
// ID poai computes, and decodable from challenge/pb/poai.proto with
// protobufjs. It is skipped where node or npm is missing or `npm ci`
// cannot install the packages.
func TestJSInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet with a js-libp2p peer for about 80 s")
	}
	dur := 60 * time.Second
	if s := os.Getenv("POAI_INTEROP_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("POAI_INTEROP_DURATION: %v", err)
		}
		dur = d
	}
	if *interopDuration > 0 {
		dur = *interopDuration
	}
	nodeBin, npmBin := interopTools(t)
	dir, err := filepath.Abs("interop")
	if err != nil {
		t.Fatal(err)
	}
	if err := interopInstall(t.Context(), npmBin, dir); err != nil {
		t.Skipf("js-libp2p peer not installed (npm ci failed; registry unreachable?): %v", err)
	}

	// The peer's own checks against the Go implementation's vectors first:
	// cheap, and a mismatch there explains any failure below.
	vctx, vcancel := context.WithTimeout(t.Context(), 30*time.Second)
	vcmd := exec.CommandContext(vctx, nodeBin, "peer.mjs", "--vectors", filepath.Join("..", "..", "testdata", "protocol", "vectors.json"))
	vcmd.Dir = dir
	out, err := vcmd.CombinedOutput()
	vcancel()
	if err != nil {
		t.Fatalf("peer.mjs --vectors: %v\n%s", err, out)
	}
	t.Logf("peer.mjs --vectors: %s", lastLines(out, 1))

	d, err := devnet.Start(t.Context(), devnet.Config{
		Nodes: 4, DataDir: t.TempDir(), GPU: "off",
		Target: 250 * time.Millisecond, EpochLength: 4 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var addrs []string
	for _, n := range d.Nodes {
		for _, a := range n.Addrs() {
			if _, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil {
				addrs = append(addrs, a.String()) // the js peer speaks TCP only
			}
		}
	}
	if len(addrs) < len(d.Nodes) {
		t.Fatalf("TCP addresses %v: want one per node", addrs)
	}

	ctx, cancel := context.WithTimeout(t.Context(), dur+90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, append([]string{"peer.mjs", "--duration", fmt.Sprintf("%dms", dur.Milliseconds())}, addrs...)...)
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if f := os.Getenv("POAI_INTEROP_LOG"); f != "" {
		// The whole of the peer's stderr (with DEBUG=libp2p:gossipsub* for
		// js-libp2p's own logs).
		lf, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		defer lf.Close()
		cmd.Stderr = io.MultiWriter(&stderr, lf)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		jsID    peer.ID
		lines   []interopLine
		summary *interopLine
		started = make(chan struct{})
		done    = make(chan struct{}) // summary read, or stdout closed
	)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		<-done // the reader ends once Wait closed the pipe
		if t.Failed() {
			t.Logf("js peer stderr (tail):\n%s", stderr.String())
		}
	}()

	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var l interopLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("js peer printed %q: %v", sc.Text(), err)
				continue
			}
			mu.Lock()
			switch l.Event {
			case "started":
				if id, err := peer.Decode(l.PeerID); err == nil {
					jsID = id
				}
				close(started)
			case "summary":
				summary = &l
				mu.Unlock()
				return
			default:
				lines = append(lines, l)
			}
			mu.Unlock()
		}
	}()
	select {
	case <-started:
	case <-done:
		t.Fatal("js peer exited before starting")
	case <-time.After(60 * time.Second):
		t.Fatal("js peer did not start within 60 s")
	}
	mu.Lock()
	id := jsID
	mu.Unlock()
	if id == "" {
		t.Fatal("js peer printed no valid peer ID")
	}
	t.Logf("js peer %s dialing %d addresses for %v", id, len(addrs), dur)

	// The Go side's view of the js peer, sampled until it reports: its
	// gossipsub score in every node (minimum and latest) and the meshes it
	// is in.
	type view struct {
		scored         bool
		minScore, last float64
		mesh           map[string]bool // at the latest sample
	}
	views := make([]view, len(d.Nodes))
	sample := func() {
		for i, n := range d.Nodes {
			if s, ok := n.GossipScores()[id]; ok {
				v := &views[i]
				if !v.scored || s < v.minScore {
					v.minScore = s
				}
				v.scored, v.last = true, s
			}
			m := map[string]bool{}
			for topic, peers := range n.Topology().Mesh {
				for _, p := range peers {
					if p.PeerID == id.String() {
						m[topic] = true
					}
				}
			}
			views[i].mesh = m
		}
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-ctx.Done():
			t.Fatalf("js peer gave no summary within %v", dur+90*time.Second)
		case <-tick.C:
			sample()
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("js peer: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if summary == nil {
		t.Fatal("js peer exited without a summary")
	}

	// What the js peer received and checked.
	byTopic := map[string]int{}
	checked, idMismatch := 0, 0
	for _, l := range lines {
		byTopic[l.Topic]++
		bad := []string{}
		for name, ok := range map[string]*bool{"id": l.IDOK, "signature": l.SigOK, "decoding": l.DecodedOK, "canonical form": l.CanonicalOK} {
			if ok == nil || !*ok {
				bad = append(bad, name)
			}
		}
		for name, ok := range map[string]*bool{"author": l.AuthorOK, "commitment signature": l.CommitmentSigOK} {
			if ok != nil && !*ok {
				bad = append(bad, name)
			}
		}
		if len(bad) > 0 {
			slices.Sort(bad)
			t.Errorf("%s %s from %s seqno %s: failed %v (%s)", l.Topic, l.ID, l.From, l.Seqno, bad, l.Error)
		}
		// The Go implementation's ID of the same envelope (p2p.MessageID),
		// for the messages small enough for the peer to print.
		if l.DataHex == "" {
			continue
		}
		from, err1 := hex.DecodeString(l.From)
		seqno, err2 := hex.DecodeString(l.Seqno)
		data, err3 := hex.DecodeString(l.DataHex)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Errorf("js peer line %+v: %v", l, err)
			continue
		}
		topic := l.Topic
		c, err := p2p.MessageIDCID(&pubsub_pb.Message{From: from, Data: data, Seqno: seqno, Topic: &topic})
		if err != nil {
			t.Error(err)
			continue
		}
		checked++
		if c.String() != l.ID {
			idMismatch++
			t.Errorf("%s from %s seqno %s: js ID %s, Go ID %s", l.Topic, l.From, l.Seqno, l.ID, c)
		}
	}
	topics := slices.Sorted(func(yield func(string) bool) {
		for k := range byTopic {
			if !yield(k) {
				return
			}
		}
	})
	for _, topic := range topics {
		t.Logf("js peer received %4d messages on %s", byTopic[topic], topic)
	}
	t.Logf("js peer: %d messages, %d failures by its own count; Go recomputed %d of their IDs, %d differ", summary.Messages, summary.Failures, checked, idMismatch)
	if summary.Failures != 0 {
		t.Errorf("js peer counts %d failed messages: %v", summary.Failures, summary.PerTopic)
	}
	if len(lines) != summary.Messages {
		t.Errorf("js peer printed %d message lines, summary says %d", len(lines), summary.Messages)
	}
	if checked == 0 {
		t.Error("no message small enough for Go to recompute its ID")
	}
	for _, topic := range []string{p2p.TopicClaims, p2p.TopicChallenges, p2p.TopicCommitments, p2p.TopicAttestation} {
		if byTopic[topic] == 0 {
			t.Errorf("js peer received nothing on %s", topic)
		}
		if len(summary.Mesh[topic]) == 0 {
			t.Errorf("js peer's mesh of %s is empty", topic)
		}
	}

	// The Go nodes' view: the js peer is scored, never below 0, and in the
	// mesh (so it relays).
	for i, v := range views {
		n := d.Nodes[i]
		inMesh := slices.Sorted(func(yield func(string) bool) {
			for k := range v.mesh {
				if !yield(k) {
					return
				}
			}
		})
		t.Logf("node %d %s: js peer's gossipsub score min %.3f last %.3f, in its mesh of %d topics %v", i, n.ID(), v.minScore, v.last, len(inMesh), inMesh)
		switch {
		case !v.scored:
			t.Errorf("node %d never scored the js peer (not connected?)", i)
		case v.minScore < 0:
			t.Errorf("node %d scored the js peer %.3f (last %.3f): penalized", i, v.minScore, v.last)
		}
	}
	for _, topic := range p2p.Topics {
		in := 0
		for _, v := range views {
			if v.mesh[topic] {
				in++
			}
		}
		if in == 0 {
			t.Errorf("no Go node has the js peer in its mesh of %s", topic)
		}
	}
}

// interopTools returns the node and npm binaries, or skips the test.
func interopTools(t *testing.T) (nodeBin, npmBin string) {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node (Node.js) not installed: the js-libp2p interop peer needs Node.js 20 or later and npm")
	}
	if npmBin, err = exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed: the js-libp2p interop peer needs it to install its packages")
	}
	out, err := exec.Command(nodeBin, "--version").Output()
	if err != nil {
		t.Skipf("node --version: %v", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, _ := strconv.Atoi(strings.Split(v, ".")[0])
	if major < 20 {
		t.Skipf("Node.js %s: the js-libp2p interop peer needs 20 or later", v)
	}
	return nodeBin, npmBin
}

// interopInstall runs npm ci in dir unless node_modules already holds what
// package-lock.json pins (a stamp of its hash, written after a successful
// install).
func interopInstall(ctx context.Context, npmBin, dir string) error {
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", ".poai-lock-sha256")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == want {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npmBin, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error",
		"--fetch-retries=1", "--fetch-timeout=30000")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, lastLines(out, 5))
	}
	return os.WriteFile(stamp, []byte(want), 0o644)
}

// tailBuffer keeps the last 64 KiB written to it; it is safe for
// concurrent use.
type tailBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if over := w.b.Len() - 64<<10; over > 0 {
		w.b.Next(over)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
