// Command poai-sim simulates a large poai network in one process: real
// nodes over libp2p's in-memory network, with plots of how the scores
// move. It is a separate binary so that the operator's poai carries
// neither the mock network's sim nor a plotting library. See docs/sim.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := simCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "poai-sim:", err)
		os.Exit(1)
	}
}
