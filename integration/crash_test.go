package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// crashChild is the process TestSIGKILLLosesNothing kills: it opens a
// node's identity and score store in dir, prints its peer ID, then
// records attestations (and runs trust rounds) as fast as it can, printing
// "ack <challenge>" once each Record has returned — an acknowledged write.
func crashChild(dir string) {
	key, err := p2p.LoadOrCreateKey(filepath.Join(dir, node.KeyFile))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	id, _ := peer.IDFromPrivateKey(key)
	prm := scoring.DefaultParams()
	prm.Trust.Retention = 1 << 30 // compaction would delete what the test counts
	book, err := scoring.Open(context.Background(), filepath.Join(dir, node.ScoresDir), id.String(), prm, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "id", id)
	out.Flush()
	for i := 0; ; i++ {
		ch := fmt.Sprintf("p%d-c%07d", os.Getpid(), i)
		err := book.Record(scoring.Attestation{Challenge: ch, Target: fmt.Sprint("t", i%7), Verifier: fmt.Sprint("v", i%5),
			Epoch: uint64(i / 100), Verdict: scoring.VerdictPass, LatencyMS: 10, DeadlineMS: 100, Accuracy: 1})
		if err != nil {
			fmt.Fprintln(out, "error", err)
			out.Flush()
			os.Exit(1)
		}
		fmt.Fprintln(out, "ack", ch)
		out.Flush()
		if i%100 == 99 {
			if _, err := book.Roll(uint64(i / 100)); err != nil {
				fmt.Fprintln(out, "error", err)
				out.Flush()
				os.Exit(1)
			}
		}
	}
}

// TestSIGKILLLosesNothing kills a process with SIGKILL in the middle of
// heavy attestation traffic (records and trust rounds on a real Badger
// store with synchronous writes), then reopens its store: Badger opens
// cleanly, the peer ID is the same, and every acknowledged attestation is
// there.
func TestSIGKILLLosesNothing(t *testing.T) {
	if dir := os.Getenv("POAI_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("kills child processes for a few seconds")
	}
	dir := t.TempDir()
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILLLosesNothing$")
		cmd.Env = append(os.Environ(), "POAI_CRASH_CHILD="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		var id string
		var acked []string
		deadline := time.Now().Add(time.Duration(1+round) * time.Second)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id "):
				id = strings.TrimPrefix(line, "id ")
			case strings.HasPrefix(line, "ack "):
				acked = append(acked, strings.TrimPrefix(line, "ack "))
			case strings.HasPrefix(line, "error"):
				t.Fatalf("child: %s", line)
			}
			if time.Now().After(deadline) && len(acked) > 0 {
				break
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		key, err := p2p.LoadOrCreateKey(filepath.Join(dir, node.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := peer.IDFromPrivateKey(key)
		if got.String() != id {
			t.Fatalf("round %d: peer ID after the kill %s, before %s", round, got, id)
		}
		book, err := scoring.Open(t.Context(), filepath.Join(dir, node.ScoresDir), id, scoring.DefaultParams(), nil)
		if err != nil {
			t.Fatalf("round %d: store does not reopen after SIGKILL: %v", round, err)
		}
		stored := map[string]bool{}
		for e := uint64(0); e <= uint64(len(acked)/100+1); e++ {
			atts, err := book.EpochAttestations(e)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range atts {
				stored[a.Challenge] = true
			}
		}
		book.Close()
		for _, ch := range acked {
			if !stored[ch] {
				t.Fatalf("round %d: acknowledged attestation %s lost (%d acknowledged)", round, ch, len(acked))
			}
		}
		t.Logf("round %d: killed after %d acknowledged attestations; all there on reopen", round, len(acked))
	}
}
