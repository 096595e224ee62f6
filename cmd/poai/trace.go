package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p"
	tracepb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/spf13/cobra"

	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// TopicTrace summarizes one topic of gossipsub traces.
type TopicTrace struct {
	Topic      string         `json:"topic"`
	Published  int            `json:"published"`
	Delivered  int            `json:"delivered"`
	Duplicates int            `json:"duplicates"`
	Rejected   int            `json:"rejected"`
	Rejects    map[string]int `json:"rejects_by_reason,omitempty"`
	Grafts     int            `json:"grafts"`
	Prunes     int            `json:"prunes"`
	// Latency from a message's PUBLISH to each DELIVER of it, over every
	// trace given (so only messages published by a traced peer count).
	LatencySamples int     `json:"latency_samples"`
	LatencyP50MS   float64 `json:"latency_p50_ms"`
	LatencyP99MS   float64 `json:"latency_p99_ms"`
}

// summarizeTraces reads gossipsub JSON traces (pubsub.NewJSONTracer, one
// event per line) and returns per-topic counts, mesh churn and delivery
// latency percentiles. Lines that do not decode are counted and skipped.
func summarizeTraces(readers ...io.Reader) ([]TopicTrace, int, error) {
	topics := map[string]*TopicTrace{}
	get := func(t string) *TopicTrace {
		if topics[t] == nil {
			topics[t] = &TopicTrace{Topic: t, Rejects: map[string]int{}}
		}
		return topics[t]
	}
	published := map[string]int64{}
	type delivery struct {
		id, topic string
		at        int64
	}
	var deliveries []delivery
	bad := 0
	for _, r := range readers {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev tracepb.TraceEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				bad++
				continue
			}
			ts := ev.GetTimestamp()
			switch {
			case ev.PublishMessage != nil:
				get(ev.PublishMessage.GetTopic()).Published++
				published[string(ev.PublishMessage.GetMessageID())] = ts
			case ev.DeliverMessage != nil:
				get(ev.DeliverMessage.GetTopic()).Delivered++
				deliveries = append(deliveries, delivery{string(ev.DeliverMessage.GetMessageID()), ev.DeliverMessage.GetTopic(), ts})
			case ev.DuplicateMessage != nil:
				get(ev.DuplicateMessage.GetTopic()).Duplicates++
			case ev.RejectMessage != nil:
				t := get(ev.RejectMessage.GetTopic())
				t.Rejected++
				t.Rejects[ev.RejectMessage.GetReason()]++
			case ev.Graft != nil:
				get(ev.Graft.GetTopic()).Grafts++
			case ev.Prune != nil:
				get(ev.Prune.GetTopic()).Prunes++
			}
		}
		if err := sc.Err(); err != nil {
			return nil, bad, err
		}
	}
	lat := map[string][]float64{}
	for _, d := range deliveries {
		if at, ok := published[d.id]; ok && d.at >= at {
			lat[d.topic] = append(lat[d.topic], float64(d.at-at)/1e6)
		}
	}
	out := make([]TopicTrace, 0, len(topics))
	for name, t := range topics {
		t.LatencySamples = len(lat[name])
		t.LatencyP50MS = scoring.Percentile(lat[name], 50)
		t.LatencyP99MS = scoring.Percentile(lat[name], 99)
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, bad, nil
}

func traceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Work with gossipsub event traces (written when p2p.trace_file is set)",
	}
	var jsonOut bool
	sum := &cobra.Command{
		Use:   "summarize FILE...",
		Short: "Per topic: messages published, delivered, duplicated, rejected (by reason), mesh churn, delivery latency p50/p99",
		Long: `summarize reads one or more gossipsub JSON traces (one event per line, as
p2p.trace_file writes them). Counts and mesh churn (GRAFT, PRUNE) are per
topic over all files. Delivery latency pairs each DELIVER with the PUBLISH of
the same message ID in any of the files, so give the traces of several peers
of one machine (one clock) to measure it.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var readers []io.Reader
			for _, a := range args {
				f, err := os.Open(a)
				if err != nil {
					return err
				}
				defer f.Close()
				readers = append(readers, f)
			}
			ts, bad, err := summarizeTraces(readers...)
			if err != nil {
				return err
			}
			if bad > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "trace: skipped %d lines that are not trace events\n", bad)
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(ts)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPUBLISHED\tDELIVERED\tDUPLICATES\tREJECTED\tGRAFTS\tPRUNES\tLATENCY p50 ms\tp99 ms\tSAMPLES")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%d\n", t.Topic, t.Published, t.Delivered, t.Duplicates, t.Rejected,
					t.Grafts, t.Prunes, t.LatencyP50MS, t.LatencyP99MS, t.LatencySamples)
			}
			return tw.Flush()
		},
	}
	sum.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	cmd.AddCommand(sum, traceCollectCmd())
	return cmd
}

// traceCollectCmd is `poai trace collect`: a remote tracer for many nodes.
func traceCollectCmd() *cobra.Command {
	var (
		listen   []string
		out, key string
		duration time.Duration
		maxBytes int64
	)
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Receive gossipsub traces from many nodes (p2p.trace_remote) into one JSON-lines file",
		Long: `collect listens as a libp2p remote tracer (protocol /libp2p/pubsub/tracer/1.0.0,
go-libp2p-pubsub's RemoteTracer) and appends every event the traced nodes send
to --out as one JSON line, the format p2p.trace_file writes and 'poai trace
summarize' reads. It prints its address: set each node's [p2p] trace_remote
(or POAI_P2P_TRACE_REMOTE) to it. Its identity is kept in --key, so the address
stays the same across restarts. Events come batched about once a second; a
node buffers up to 64 Ki events while the collector is away and then drops
the oldest. Each event is recorded under the peer its stream authenticated,
whatever the event says. Any peer that reaches the address may send: listen
where only your nodes can, and --max-bytes bounds the file. Stops on Ctrl-C
or after --duration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out: a file to append the events to is required")
			}
			f, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			defer f.Close()
			k, err := p2p.LoadOrCreateKey(key)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			h, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings(listen...))
			if err != nil {
				return fmt.Errorf("--listen %v: %w", listen, err)
			}
			defer h.Close()
			c := p2p.CollectTraces(h, f, maxBytes, slog.Default())
			for _, a := range h.Addrs() {
				fmt.Fprintf(cmd.OutOrStdout(), "collecting gossipsub traces at %s/p2p/%s\n", a, h.ID())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "set [p2p] trace_remote (or POAI_P2P_TRACE_REMOTE) of each node to one of these; events go to %s\n", out)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			<-ctx.Done()
			fmt.Fprintf(cmd.OutOrStdout(), "collected %d events from %d tracer streams into %s\n", c.Events(), c.Peers(), out)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&listen, "listen", []string{"/ip4/127.0.0.1/tcp/4010"}, "multiaddrs to listen on (use a routable address for nodes on other machines)")
	cmd.Flags().StringVar(&out, "out", "", "file to append the events to, JSON lines (required)")
	cmd.Flags().StringVar(&key, "key", "trace-collector.key", "identity key file of the collector, created if missing")
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	cmd.Flags().Int64Var(&maxBytes, "max-bytes", 4<<30, "stop writing once --out has grown by this many bytes (any peer that reaches the address may send traces; 0: no limit)")
	return cmd
}
