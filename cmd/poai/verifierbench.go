package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/node"
)

// verifierRun is one line of `poai bench --verifier-only`: the int8
// challenge a claim of Model gets on the default planner, the prover's
// anticipated time, and one verifier's time on one core.
type verifierRun struct {
	Model       string  `json:"model"`
	Shape       string  `json:"shape"`
	AnticipMS   float64 `json:"anticipated_ms"`
	FreivaldsMS float64 `json:"freivalds_ms"`
	DigestMS    float64 `json:"check_digest_ms"`
	VerifierMS  float64 `json:"verifier_ms"`
	// Ratio is the verifier's time over the prover's anticipated time.
	Ratio float64 `json:"verifier_over_prover"`
}

// benchVerifier measures, for the catalog model named (or every model of
// gpu.Catalog for "all"), one verifier's work on one CPU core for the
// int8 challenge a challenger sends a claim of that model
// (challenge.MeasureVerifierCostInt8): no product is proved.
func benchVerifier(ctx context.Context, out, progress io.Writer, model string, jsonOut bool) error {
	models := []string{model}
	if model == "all" {
		models = models[:0]
		for _, d := range gpu.Catalog {
			models = append(models, d.Model)
		}
	}
	cfg := node.DefaultConfig().Challenge
	planner := cfg.Planner()
	// A verifying node computes its own check digest and every possible
	// verifier's (the chosen ones and two spares), to judge theirs.
	digestOf := make([]peer.ID, cfg.Verifiers+3)
	for i := range digestOf {
		digestOf[i] = benchPeer()
	}
	cpu := gpu.NewCPU(gpu.WithWorkers(1))
	var runs []verifierRun
	for _, m := range models {
		if _, ok := planner.Lookup(m); !ok {
			return fmt.Errorf("--catalog %q: not a catalog model (--catalog all measures every one)", m)
		}
		pl, err := planner.Plan(&pb.DeviceClaim{Model: m, Count: 1}, pb.Workload_WORKLOAD_GEMM_INT8)
		if err != nil {
			return fmt.Errorf("plan for %q: %w", m, err)
		}
		ch, chCID, secret, err := benchChallenge(pl, benchPeer())
		if err != nil {
			return err
		}
		fmt.Fprintf(progress, "bench: verifying the int8 challenge %s for %q on one core\n", shapeString(pl.Shape), m)
		c, err := challenge.MeasureVerifierCostInt8(ctx, cpu, ch, chCID, secret, digestOf)
		if err != nil {
			return fmt.Errorf("%q: %w", m, err)
		}
		runs = append(runs, verifierRun{Model: m, Shape: shapeString(pl.Shape), AnticipMS: ms(pl.Anticipated),
			FreivaldsMS: ms(c.Freivalds), DigestMS: ms(c.Digest), VerifierMS: ms(c.Total()), Ratio: c.Total().Seconds() / pl.Anticipated.Seconds()})
	}
	if jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(runs)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "MODEL\tINT8 CHALLENGE\tPROVER ms (anticipated)\tFREIVALDS ms\tCHECK DIGESTS ms (%d)\tVERIFIER ms (1 core)\tVERIFIER/PROVER\n", len(digestOf))
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.3f\n", r.Model, r.Shape, r.AnticipMS, r.FreivaldsMS, r.DigestMS, r.VerifierMS, r.Ratio)
	}
	return tw.Flush()
}

// benchChallenge returns a challenge of plan pl for target from a fresh
// challenger, with a fresh nonce and opening secret, and its CID.
func benchChallenge(pl challenge.Plan, target peer.ID) (ch *pb.Challenge, chCID cid.Cid, secret []byte, err error) {
	ch = &pb.Challenge{Version: 1, Target: []byte(target), Challenger: []byte(benchPeer()), Nonce: benchNonce()}
	pl.Apply(ch)
	secret = make([]byte, 32)
	rand.Read(secret)
	ch.RevealHash = challenge.RevealHash(secret)
	_, chCID, err = challenge.MessageCID(ch)
	return ch, chCID, secret, err
}
