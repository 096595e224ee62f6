// Command poai runs a Proof-of-AI peer: it challenges other peers to prove
// the GPU they claim, proves its own device when challenged, verifies
// others' answers and keeps integrity scores. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/libp2p/go-libp2p/gologshim"
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
	root.AddCommand(initCmd(), runCmd(), statusCmd(), peersCmd(), scoresCmd(), attestationsCmd(), challengeCmd(), topologyCmd(), traceCmd(), devnetCmd(), simCmd(), benchCmd(), storeCmd(), configCmd(), keyCmd(), doctorCmd(), versionCmd())
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

// newLogger returns a slog logger writing to stderr, and routes
// go-libp2p's own logs (gologshim) to the same handler, at warn and above
// unless the level is debug.
func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	handler := func(l slog.Level) (slog.Handler, error) {
		opts := &slog.HandlerOptions{Level: l}
		switch format {
		case "json":
			return slog.NewJSONHandler(os.Stderr, opts), nil
		case "text", "":
			return slog.NewTextHandler(os.Stderr, opts), nil
		}
		return nil, fmt.Errorf("log format %q is not text or json", format)
	}
	h, err := handler(l)
	if err != nil {
		return nil, err
	}
	libp2pLevel := max(l, slog.LevelWarn)
	if l <= slog.LevelDebug {
		libp2pLevel = l
	}
	lh, _ := handler(libp2pLevel)
	gologshim.SetDefaultHandler(lh)
	// Libraries that write to the standard library's log (zeroconf, the
	// mDNS responder) go through slog too.
	stdlog.SetFlags(0)
	stdlog.SetOutput(stdlogWriter{slog.New(lh).With("logger", "stdlib")})
	return slog.New(h), nil
}

// stdlogWriter hands each line the standard library's log writes to a
// slog logger, at the level its "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]"
// prefix names (zeroconf's style; warn without one), the prefix removed.
type stdlogWriter struct{ l *slog.Logger }

func (w stdlogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	level := slog.LevelWarn
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError} {
		if rest, ok := strings.CutPrefix(msg, prefix); ok {
			msg, level = strings.TrimSpace(rest), l
			break
		}
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}
