package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/poai-network/poai/p2p"
)

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, protocol version and Go runtime",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "poai %s (protocol /poai/%s, %s %s/%s)\n", version, p2p.ProtocolVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
