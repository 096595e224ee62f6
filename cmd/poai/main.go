// Command poai runs a Proof-of-AI peer: it challenges other peers to prove
// the GPU they claim, proves its own device when challenged, verifies
// others' answers and keeps integrity scores. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "poai:", err)
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		os.Exit(1)
	}
}

// exitError is an error that carries a specific exit status.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "poai",
		Short: "poai: a peer-to-peer Proof-of-AI node that catches GPU operators who lie",
		Long: `poai peers gossip challenges sized from the GPU each peer claims, prove them
(seeded matrix products committed with a Merkle root), cross-verify each other's
answers by recomputing sampled rows, and fold signed attestations into
integrity scores kept in Badger.

Start with 'poai devnet' to watch a local network catch cheaters, or
'poai init' then 'poai run' to operate a node.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(initCmd(), runCmd(), statusCmd(), peersCmd(), scoresCmd(), attestationsCmd(), proofsCmd(), challengeCmd(), topologyCmd(), traceCmd(), devnetCmd(), benchCmd(), storeCmd(), configCmd(), keyCmd(), doctorCmd(), versionCmd())
	return root
}

// defaultDataDir is $POAI_PATH, else ~/.poai.
func defaultDataDir() string {
	if p := os.Getenv("POAI_PATH"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".poai"
	}
	return filepath.Join(home, ".poai")
}
