package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/scoring"
)

// apiFlags are the flags of every command that reads a running node.
type apiFlags struct {
	addr, token string
	json        bool
}

func (a *apiFlags) register(cmd *cobra.Command) {
	def := "http://127.0.0.1:5280"
	if e := os.Getenv("POAI_API"); e != "" {
		def = e
	}
	cmd.Flags().StringVar(&a.addr, "api", def, "URL of the node's API (env POAI_API; config api.listen of the node)")
	cmd.Flags().StringVar(&a.token, "token", os.Getenv("POAI_API_TOKEN"), "API bearer token (env POAI_API_TOKEN)")
	cmd.Flags().BoolVar(&a.json, "json", false, "print the API's JSON instead of a table")
}

// get fetches path from the API into v, and returns the raw body.
func (a *apiFlags) get(path string, q url.Values, v any) ([]byte, error) {
	return a.do(http.MethodGet, path, q, nil, v)
}

// do sends a request to the API and decodes the answer into v.
func (a *apiFlags) do(method, path string, q url.Values, body io.Reader, v any) ([]byte, error) {
	u := a.addr + node.APIVersion + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (is 'poai run' running with its API on %s?)", err, a.addr)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", u, resp.Status, bytes.TrimSpace(answer))
	}
	return answer, json.Unmarshal(answer, v)
}

// show fetches path into v and prints either the API's JSON (--json) or the
// table that table writes.
func (a *apiFlags) show(cmd *cobra.Command, path string, q url.Values, v any, table func(tw *tabwriter.Writer)) error {
	body, err := a.get(path, q, v)
	if err != nil {
		return err
	}
	if a.json {
		_, err := cmd.OutOrStdout().Write(body)
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func statusCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a running node's peer ID, addresses, epoch, claim and counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var s node.StatusView
			return a.show(cmd, "/status", nil, &s, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "peer ID\t%s\nrole\t%s\nepoch\t%d (%s)\npeers\t%d connected, %d with a claim\n", s.PeerID, s.Role, s.Epoch, s.EpochLength, s.ConnectedPeers, s.LivePeers)
				fmt.Fprintf(tw, "claim\t%s (%s): %.4g int8 TOPS, %.4g bf16 TFLOPS, %.4g G hashes/s, %d bytes\n", s.Claim.Model, s.Claim.Backend, s.Claim.Int8TOPS, s.Claim.BF16TFLOPS, s.Claim.HashGHps, s.Claim.VRAMBytes)
				fmt.Fprintf(tw, "work\t%d challenges issued, %d answered, %d not completed, %d attestations\n", s.Stats.Issued, s.Stats.Answered, s.Stats.ProveFailed, s.Stats.Attested)
				for _, ad := range s.Addrs {
					fmt.Fprintf(tw, "address\t%s\n", ad)
				}
			})
		},
	}
	a.register(cmd)
	return cmd
}

func peersCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the peers a running node knows from their device claims",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []node.PeerView
			return a.show(cmd, "/peers", nil, &ps, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "PEER ID\tCONNECTED\tMODEL\tINT8 TOPS\tBF16 TFLOPS\tINTEGRITY\tGOSSIP\tLAST CLAIM\tFLAGS")
				for _, p := range ps {
					fmt.Fprintf(tw, "%s\t%v\t%s\t%.4g\t%.4g\t%s\t%.1f\t%s\t%s\n", p.PeerID, p.Connected, p.Claim.Model, p.Claim.Int8TOPS, p.Claim.BF16TFLOPS,
						integrityText(p.Score, p.New), p.GossipScore, p.LastSeen.Format(time.RFC3339), strings.Join(p.Flags, "; "))
				}
			})
		},
	}
	a.register(cmd)
	return cmd
}

func scoresCmd() *cobra.Command {
	var (
		a    apiFlags
		peer string
	)
	cmd := &cobra.Command{
		Use:   "scores",
		Short: "Show a running node's integrity scores: challenges, passes, latency, deviation, accuracy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if peer != "" {
				q.Set("peer", peer)
			}
			var ss []scoring.Summary
			return a.show(cmd, "/scores", q, &ss, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "PEER ID\tSCORE\tCHALLENGES\tPASSED\tFAILED\tP50 ms\tP99 ms\tMAX DEVIATION\tACCURACY")
				for _, s := range ss {
					fmt.Fprintf(tw, "%s\t%.3f\t%d\t%d\t%d\t%.0f\t%.0f\t%.3g\t%.3f\n", s.Peer, s.Score, s.Challenges, s.Passed, s.Failed, s.LatencyP50MS, s.LatencyP99MS, s.MaxDeviation, s.Accuracy)
				}
			})
		},
	}
	a.register(cmd)
	cmd.Flags().StringVar(&peer, "peer", "", "show only this peer ID")
	return cmd
}

func attestationsCmd() *cobra.Command {
	var (
		a     apiFlags
		peer  string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "attestations",
		Short: "List the attestations a running node holds about a peer, most recent first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if peer == "" {
				return fmt.Errorf("--peer is required")
			}
			var rs []scoring.Recorded
			q := url.Values{"peer": {peer}, "limit": {fmt.Sprint(limit)}}
			return a.show(cmd, "/attestations", q, &rs, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "RECORDED\tEPOCH\tVERIFIER\tVERDICT\tLATENCY ms\tDEADLINE ms\tDEVIATION\tACCURACY\tWEIGHT\tWHY")
				for _, r := range rs {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.0f\t%.0f\t%.3g\t%.3f\t%.2f\t%s\n", r.At.Format(time.RFC3339), r.Epoch, r.Verifier, r.Verdict,
						r.LatencyMS, r.DeadlineMS, r.Deviation, r.Accuracy, r.Weight, r.Reason)
				}
			})
		},
	}
	a.register(cmd)
	cmd.Flags().StringVar(&peer, "peer", "", "peer ID (required)")
	cmd.Flags().IntVar(&limit, "limit", 50, "most attestations to list")
	return cmd
}

func challengeCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{
		Use:   "challenge PEER",
		Short: "Ask the network to challenge a peer now instead of at its slot in the epoch",
		Long: `challenge brings forward this epoch's challenge of PEER. Each peer has one
scheduled challenger per epoch (rendezvous hashing), and peers act on at most
one challenge per challenger, target and epoch. If the running node is PEER's
scheduled challenger it issues the challenge at once; otherwise it gossips a
request that the scheduled challenger honours. Asking twice in an epoch
changes nothing: the network's load per target stays one challenge. If PEER
was already challenged this epoch (at its slot, or by an earlier ask), it
says so and exits 0; ask again in the next epoch for another challenge.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, _ := json.Marshal(map[string]string{"peer": args[0]})
			var res node.ChallengeOutcome
			raw, err := a.do(http.MethodPost, "/challenges", nil, bytes.NewReader(body), &res)
			if err != nil && strings.Contains(err.Error(), "409 Conflict") && strings.Contains(err.Error(), "already challenged") {
				_, why, _ := strings.Cut(err.Error(), "409 Conflict: ")
				fmt.Fprintf(cmd.OutOrStdout(), "nothing to do: %s (one challenge per target, challenger and epoch); see 'poai attestations --peer %s', or ask again next epoch\n", why, args[0])
				return nil
			}
			if err != nil {
				return err
			}
			if a.json {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			if res.Requested {
				fmt.Fprintf(cmd.OutOrStdout(), "requested: the scheduled challenger %s of epoch %d will challenge %s now; see 'poai attestations --peer %s'\n",
					res.Challengers[0], res.Epoch, args[0], args[0])
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "challenge %s issued in epoch %d; see 'poai attestations --peer %s'\n", res.CID, res.Epoch, args[0])
			return nil
		},
	}
	a.register(cmd)
	return cmd
}

func proofsCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{
		Use:   "proofs",
		Short: "List a running node's latest challenges as a target: its proofs, the verdicts heard, what to check",
		Long: `proofs answers "why did my challenge fail": for each of the node's latest
challenges (at most 64, most recent first) it shows when it came, the
workload and deadline, how long the proof took to commit, whether the node
opened it, the verdicts its verifiers attested, and, when one was not a
pass, what to check.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rs []node.ProofRecord
			return a.show(cmd, "/proofs", nil, &rs, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "RECEIVED\tEPOCH\tWORKLOAD\tDEADLINE ms\tPROVE ms\tOPENED\tVERDICTS\tCHECK")
				for _, r := range rs {
					counts := map[string]int{}
					for _, v := range r.Verdicts {
						counts[v]++
					}
					verdicts := ""
					for _, v := range slices.Sorted(maps.Keys(counts)) {
						verdicts += fmt.Sprintf("%s=%d ", v, counts[v])
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.0f\t%v\t%s\t%s\n", r.ReceivedAt.Format(time.RFC3339), r.Epoch, r.Workload, r.DeadlineMS,
						r.ProveMS, r.Opened, strings.TrimSpace(verdicts), r.Check)
				}
			})
		},
	}
	a.register(cmd)
	return cmd
}

// integrityText prints an integrity score, or "new" for a peer with no
// record yet (0 then means nothing, not a cheat).
func integrityText(score float64, isNew bool) string {
	if isNew {
		return "new"
	}
	return fmt.Sprintf("%.3f", score)
}
