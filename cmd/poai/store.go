package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/scoring"
)

func storeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Back up and restore the score store (stop the node first)",
		Long: `The score store (<data-dir>/scores, Badger) holds the node's attestations,
scores and trust vectors. Back it up beside identity.key: the key keeps the
peer ID, the store its history. Both commands need the node stopped (Badger
locks its directory).`,
	}
	var dir, file string
	backup := &cobra.Command{
		Use:   "backup",
		Short: "Write a full backup of the score store (Badger's backup stream)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			var w io.Writer = cmd.OutOrStdout()
			if file != "-" {
				f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("--out: %w (an existing file is never overwritten)", err)
				}
				defer func() {
					if cerr := f.Close(); err == nil {
						err = cerr
					}
					if err != nil {
						os.Remove(file)
					}
				}()
				w = f
			}
			n, err := scoring.Backup(cmd.Context(), filepath.Join(dir, node.ScoresDir), w)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "backed up %d peer records to %s\n", n, file)
			return nil
		},
	}
	backup.Flags().StringVar(&dir, "data-dir", defaultDataDir(), "data directory (env POAI_PATH)")
	backup.Flags().StringVar(&file, "out", "", "backup file to create (- for standard output)")
	restore := &cobra.Command{
		Use:   "restore",
		Short: "Restore the score store from a backup into an empty store",
		Long: `restore loads a backup into <data-dir>/scores, which must not hold a store:
move a damaged one aside first with 'poai run --reset-store' (or by hand).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(file)
			if err != nil {
				return fmt.Errorf("--in: %w", err)
			}
			defer f.Close()
			n, err := scoring.Restore(cmd.Context(), filepath.Join(dir, node.ScoresDir), f)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %d peer records into %s\n", n, filepath.Join(dir, node.ScoresDir))
			return nil
		},
	}
	restore.Flags().StringVar(&dir, "data-dir", defaultDataDir(), "data directory (env POAI_PATH)")
	restore.Flags().StringVar(&file, "in", "", "backup file written by poai store backup")
	for _, c := range []*cobra.Command{backup, restore} {
		c.PreRunE = func(c *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("a backup file is required (--out for backup, --in for restore)")
			}
			return nil
		}
	}
	cmd.AddCommand(backup, restore)
	return cmd
}
