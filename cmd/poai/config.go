package main

import (
	"fmt"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"

	"github.com/poai-network/poai/node"
)

func configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect a node's configuration",
		Args:  cobra.NoArgs,
	}
	var (
		rf      runFlags
		secrets bool
	)
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration: config.toml, then POAI_* variables, then flags",
		Long: `show prints, as TOML, the configuration 'poai run' would use with the same
data directory, environment and flags: config.toml, overridden by POAI_*
environment variables, overridden by the flags given here (run's own). It
checks the configuration and the data directory as run does (identity key
present, modes) and fails with the same error. The API token is
shown as <redacted> unless --show-secrets is given.`,
		Example: `  poai config show
  POAI_LOG_LEVEL=debug poai config show --data-dir /var/lib/poai --listen /ip4/0.0.0.0/tcp/4747`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, dir, path, err := rf.load(cmd)
			if err != nil {
				return err
			}
			warnings, err := node.CheckDataDir(dir, path)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if cfg.API.Token != "" && !secrets {
				cfg.API.Token = "<redacted>"
			}
			b, err := toml.Marshal(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# effective configuration: %s, then POAI_* variables, then flags\n\n%s", path, b)
			return nil
		},
	}
	rf.register(show.Flags())
	show.Flags().BoolVar(&secrets, "show-secrets", false, "print the API token instead of <redacted>")
	cmd.AddCommand(show)
	return cmd
}
