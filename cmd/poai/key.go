package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"
)

// keyView is what key show prints.
type keyView struct {
	PeerID string `json:"peer_id"`
	Type   string `json:"type"`
	// PublicKey is the libp2p protobuf encoding of the public key, base64.
	PublicKey string `json:"public_key"`
	File      string `json:"file"`
	Mode      string `json:"mode"`
}

func keyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Inspect the node's identity key",
		Args:  cobra.NoArgs,
	}
	var (
		dir     string
		jsonOut bool
	)
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the peer ID and public key of the identity in the data directory",
		Long: `show reads <data-dir>/identity.key without changing it, checks that it can
sign (a damaged key is refused, as run refuses it), and prints the peer ID,
key type, public key (libp2p's protobuf encoding, base64), the file and its
mode. It never prints the private key.

The identity is that one file: back it up by copying identity.key (keep
the copy 0600, offline); restore it by copying it into a data directory
before 'poai run' there. A node without it gets a new peer ID from 'poai
init' and starts with no reputation. Never run two nodes on one key: their
commitments would conflict and be attested as equivocation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := filepath.Join(dir, node.KeyFile)
			warnings, err := p2p.CheckKeyFile(path)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("identity %s: %w", path, err)
			}
			k, err := crypto.UnmarshalPrivateKey(b)
			if err == nil {
				err = p2p.CheckKey(k)
			}
			if err != nil {
				return fmt.Errorf("identity %s: %w", path, err)
			}
			id, err := peer.IDFromPrivateKey(k)
			if err != nil {
				return err
			}
			pub, err := crypto.MarshalPublicKey(k.GetPublic())
			if err != nil {
				return err
			}
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			v := keyView{PeerID: id.String(), Type: k.Type().String(), PublicKey: base64.StdEncoding.EncodeToString(pub),
				File: path, Mode: fmt.Sprintf("%04o", fi.Mode().Perm())}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			fmt.Fprintf(out, "peer ID     %s\nkey type    %s\npublic key  %s\nfile        %s (mode %s)\n", v.PeerID, v.Type, v.PublicKey, v.File, v.Mode)
			return nil
		},
	}
	show.Flags().StringVar(&dir, "data-dir", defaultDataDir(), "data directory holding identity.key (env POAI_PATH)")
	show.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	cmd.AddCommand(show)
	return cmd
}
