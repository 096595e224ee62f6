package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/poai-network/poai/p2p"
)

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, protocol version and Go runtime",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "poai %s (commit %s, protocol /poai/%s, %s %s/%s)\n", version, commit(), p2p.ProtocolVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}

// gitCommit is set at build time with -ldflags "-X main.gitCommit=..."
// (`make build` does), for builds where Go embeds no VCS information
// (-buildvcs=false, or outside a checkout).
var gitCommit = ""

// commit returns the VCS revision the binary was built from: gitCommit,
// or the revision Go embeds when it builds inside a git checkout (12 hex
// digits, "+dirty" when the tree had uncommitted changes), or "unknown"
// (go run, go test, -buildvcs=false without gitCommit).
func commit() string {
	if gitCommit != "" {
		return gitCommit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	rev = rev[:min(len(rev), 12)]
	if dirty {
		rev += "+dirty"
	}
	return rev
}
