package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"
)

func initCmd() *cobra.Command {
	var dir, profile string
	var genToken bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a data directory with an identity key and a default config",
		Long: `init creates the data directory, an Ed25519 identity key (identity.key,
mode 0600: the peer ID derives from it, so back it up) and config.toml with
the defaults and a comment on every setting. An existing key is kept; an
existing config is never overwritten. --profile bootstrap writes the
configuration of a bootstrap node: a stable entry point that other peers
list under p2p.bootstrap. Flags are checked before anything is written: an
unknown profile writes neither key nor config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Every flag is checked before anything is written.
			mk, ok := node.Profiles[profile]
			if !ok {
				return fmt.Errorf("--profile: unknown profile %q (%s); nothing was written", profile, strings.Join(slices.Sorted(maps.Keys(node.Profiles)), ", "))
			}
			cfg := mk()
			if genToken {
				b := make([]byte, 32)
				if _, err := rand.Read(b); err != nil {
					return err
				}
				cfg.API.Token = base64.RawURLEncoding.EncodeToString(b)
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("--profile %s: %w", profile, err)
			}
			if dir == "" {
				return errors.New("--data-dir: empty; nothing was written")
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			key, err := p2p.LoadOrCreateKey(filepath.Join(dir, node.KeyFile))
			if err != nil {
				return err
			}
			id, err := peer.IDFromPrivateKey(key)
			if err != nil {
				return err
			}
			cfgPath := filepath.Join(dir, node.ConfigFile)
			switch err := node.WriteConfig(cfgPath, cfg); {
			case errors.Is(err, fs.ErrExist):
				fmt.Fprintf(cmd.OutOrStdout(), "config %s exists, left as it is\n", cfgPath)
				if genToken {
					return fmt.Errorf("--api-token: %s exists and was left as it is; set [api] token in it by hand", cfgPath)
				}
			case err != nil:
				return err
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", cfgPath)
			}
			changed, err := node.TightenDataDir(dir)
			for _, c := range changed {
				fmt.Fprintf(cmd.OutOrStdout(), "tightened %s\n", c)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "data dir %s\npeer ID  %s\n", dir, id)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data-dir", defaultDataDir(), "data directory (env POAI_PATH)")
	cmd.Flags().BoolVar(&genToken, "api-token", false, "write a random API token (32 bytes, base64url) into the new config's [api] token")
	cmd.Flags().StringVar(&profile, "profile", "default", "config profile: default, or bootstrap (fixed ports 4747 on all interfaces, no mDNS, 512-2048 connections) for a stable entry point")
	return cmd
}
