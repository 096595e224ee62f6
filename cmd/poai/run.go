package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/poai-network/poai/internal/logging"
	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

func runCmd() *cobra.Command {
	var (
		rf           runFlags
		resetStore   bool
		recalibrate  bool
		pprofAddr    string
		drainTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run one node: the operator's daemon",
		Long: `run starts a node from its data directory (see 'poai init'): it joins the
gossip network, announces its device claim, answers challenges addressed to
it, challenges and verifies others, and keeps scores. Flags override the
config file; environment variables POAI_<SECTION>_<KEY> (for example
POAI_P2P_BOOTSTRAP, POAI_API_TOKEN, POAI_LOG_LEVEL) override the file, and
flags override both. An unknown key in the file (named with its line and
column) or an unknown POAI_ variable is an error. SIGINT or SIGTERM shuts it
down gracefully: it first drains (--drain-timeout: it issues no new
challenge and finishes those it proves, issued or judges; a second signal
stops at once), then cancels what is left and flushes and closes the score
store.

A device figure the config leaves at 0 is measured at the first start and
recorded with the device's identity in <data-dir>/calibration.json; later
starts claim the recorded figures (a measurement varies from start to
start) until --recalibrate measures again and logs both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, dir, cfgPath, err := rf.load(cmd)
			if err != nil {
				return err
			}
			if pprofAddr != "" && !node.Loopback(pprofAddr) {
				return errPprofNotLoopback(pprofAddr)
			}
			warnings, err := node.CheckDataDir(dir, cfgPath)
			if err != nil {
				return err
			}
			// A held port fails here, before the device is measured or the
			// store opened: nothing is written for a node that cannot start.
			if err := p2p.CheckPortsFree(cfg.P2P.Listen); err != nil {
				return err
			}
			if resetStore {
				aside, err := scoring.Reset(filepath.Join(dir, node.ScoresDir))
				if err != nil {
					return err
				}
				if aside != "" {
					warnings = append(warnings, "--reset-store: the score store was moved to "+aside+"; this node starts with no history")
				}
			}
			log, err := logging.New(cfg.Log.Level, cfg.Log.Format)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				log.Warn(w)
			}
			opts := []node.Option{node.WithLogger(log)}
			if recalibrate {
				opts = append(opts, node.WithRecalibrate())
			}
			n, err := node.New(dir, cfg, opts...)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := n.Start(ctx); err != nil {
				return err
			}
			// The API and /metrics share a server when they share an address.
			// /metrics needs the API's token where it shares the API's
			// address or listens beyond loopback (Validate requires a token
			// then).
			muxes := map[string]*http.ServeMux{}
			route := func(addr, pattern string, h http.Handler) {
				if addr == "" {
					return
				}
				if muxes[addr] == nil {
					muxes[addr] = http.NewServeMux()
				}
				muxes[addr].Handle(pattern, h)
			}
			var metrics http.Handler = promhttp.HandlerFor(prometheus.Gatherers{n.Registry(), buildInfo()}, promhttp.HandlerOpts{})
			if tok := cfg.API.Token; tok != "" && (cfg.Metrics.Listen == cfg.API.Listen || !node.Loopback(cfg.Metrics.Listen)) {
				metrics = node.RequireToken(tok, metrics)
			}
			route(cfg.Metrics.Listen, "/metrics", metrics)
			api := n.APIHandler(cfg.API.Token)
			route(cfg.API.Listen, node.APIVersion+"/", api)
			route(cfg.API.Listen, "GET /{$}", api)
			var servers []*node.HTTPServer
			for addr, mux := range muxes {
				routeHealth(mux, n, len(cfg.P2P.Bootstrap))
				srv, err := node.ServeHTTP(addr, node.HostGuard(addr, cfg.API.Hosts, mux), node.DefaultHTTPLimits(), log)
				if err != nil {
					for _, s := range servers {
						s.Shutdown(context.Background())
					}
					n.Close()
					return fmt.Errorf("http listener %s: %w (is another poai running? change [api] listen or [metrics] listen)", addr, err)
				}
				servers = append(servers, srv)
				log.Info("http listening", "addr", "http://"+srv.Addr().String(), "metrics", addr == cfg.Metrics.Listen, "api", addr == cfg.API.Listen)
			}
			if pprofAddr != "" {
				srv, err := servePprof(pprofAddr, cfg.API.Token, log)
				if err != nil {
					for _, s := range servers {
						s.Shutdown(context.Background())
					}
					n.Close()
					return err
				}
				servers = append(servers, srv)
			}
			var errs []error
			select {
			case <-ctx.Done():
			case err := <-n.Fatal():
				errs = append(errs, err)
			}
			if ctx.Err() != nil && drainTimeout > 0 {
				drain(n, drainTimeout, log)
			}
			log.Info("shutting down")
			for _, srv := range servers {
				errs = append(errs, srv.Shutdown(context.Background()))
			}
			errs = append(errs, n.Close())
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	rf.register(f)
	f.StringVar(&pprofAddr, "pprof", "", pprofFlagHelp)
	f.BoolVar(&recalibrate, "recalibrate", false, "measure the device again even though the data directory records a calibration of it (calibration.json), and record the new one; the log shows both")
	f.DurationVar(&drainTimeout, "drain-timeout", 30*time.Second, "on SIGINT or SIGTERM, finish the challenges this node proves, issued or judges for at most this long before stopping (a second signal stops at once; 0 stops at once)")
	f.BoolVar(&resetStore, "reset-store", false, "move a damaged score store aside (to scores.broken-<time>) and start with an empty one; its history is lost to this node")
	return cmd
}

// runFlags are the flags of run that override config.toml, shared with
// config show so that it prints what run would use.
type runFlags struct {
	dir, cfgPath string
	listen       []string
	bootstrap    []string
	mdns         bool
	metricsAddr  string
	apiAddr      string
	logLevel     string
	logFormat    string
	tops         float64
	model        string
	exportOut    string
	shareTopo    bool
}

func (r *runFlags) register(f *pflag.FlagSet) {
	f.StringVar(&r.dir, "data-dir", defaultDataDir(), "data directory holding identity.key, config.toml and scores/ (env POAI_PATH)")
	f.StringVar(&r.cfgPath, "config", "", "config file (default <data-dir>/config.toml)")
	f.StringSliceVar(&r.listen, "listen", nil, "multiaddrs to listen on, comma-separated (config p2p.listen, env POAI_P2P_LISTEN)")
	f.StringSliceVar(&r.bootstrap, "bootstrap", nil, "bootstrap peers, full multiaddrs ending in /p2p/<peer ID> (config p2p.bootstrap, env POAI_P2P_BOOTSTRAP)")
	f.BoolVar(&r.mdns, "mdns", true, "discover peers on the local network (config p2p.mdns, env POAI_P2P_MDNS)")
	f.StringVar(&r.metricsAddr, "metrics-addr", "", "host:port of the Prometheus /metrics endpoint, empty to disable (config metrics.listen, env POAI_METRICS_LISTEN, default 127.0.0.1:9464)")
	f.StringVar(&r.apiAddr, "api-addr", "", "host:port of the JSON API, empty to disable (config api.listen, env POAI_API_LISTEN, default 127.0.0.1:5280; token from api.token or POAI_API_TOKEN)")
	f.StringVar(&r.logLevel, "log-level", "info", "debug, info, warn or error (config log.level, env POAI_LOG_LEVEL)")
	f.StringVar(&r.logFormat, "log-format", "text", "text or json (config log.format, env POAI_LOG_FORMAT)")
	f.Float64Var(&r.tops, "int8-tops", 0, "claimed dense int8 throughput in TOPS; 0 measures the backend at start (config device.int8_tops, env POAI_DEVICE_INT8_TOPS)")
	f.StringVar(&r.model, "model", "", "device model to claim; empty uses the backend's own (config device.model, env POAI_DEVICE_MODEL)")
	f.StringVar(&r.exportOut, "export-outputs", "", "append the decoded tokens of every llm answer this node verifies as passing to this JSONL file (config challenge.export_outputs, env POAI_CHALLENGE_EXPORT_OUTPUTS)")
	f.BoolVar(&r.shareTopo, "share-topology", false, "share this node's gossip mesh (peer IDs and gossipsub scores, no addresses) with peers that ask, and collect theirs for the API's merged network view; off by default, since a mesh tells an eclipse attacker whom to displace (config p2p.share_topology, env POAI_P2P_SHARE_TOPOLOGY)")
}

// load returns the effective configuration: config.toml, then POAI_*
// environment variables, then the flags cmd was given, validated; with the
// data directory and the config file's path.
func (r *runFlags) load(cmd *cobra.Command) (node.Config, string, string, error) {
	dir, cfgPath := r.dir, r.cfgPath
	if cfgPath == "" {
		cfgPath = filepath.Join(dir, node.ConfigFile)
	}
	// Validated once the environment and flags are applied: either may
	// supply what the file leaves out.
	cfg, err := node.ReadConfig(cfgPath)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, dir, cfgPath, fmt.Errorf("%w (run 'poai init --data-dir %s' first)", err, dir)
	}
	if err != nil {
		return cfg, dir, cfgPath, err
	}
	if err := node.CheckEnv(os.Environ()); err != nil {
		return cfg, dir, cfgPath, fmt.Errorf("environment: %w", err)
	}
	if err := cfg.ApplyEnv(os.Getenv); err != nil {
		return cfg, dir, cfgPath, fmt.Errorf("environment: %w", err)
	}
	f := cmd.Flags()
	if f.Changed("listen") {
		cfg.P2P.Listen = r.listen
	}
	if f.Changed("bootstrap") {
		cfg.P2P.Bootstrap = r.bootstrap
	}
	if f.Changed("mdns") {
		cfg.P2P.MDNS = r.mdns
	}
	if f.Changed("share-topology") {
		cfg.P2P.ShareTopology = r.shareTopo
	}
	if f.Changed("metrics-addr") {
		cfg.Metrics.Listen = r.metricsAddr
	}
	if f.Changed("api-addr") {
		cfg.API.Listen = r.apiAddr
	}
	if f.Changed("log-level") {
		cfg.Log.Level = r.logLevel
	}
	if f.Changed("log-format") {
		cfg.Log.Format = r.logFormat
	}
	if f.Changed("int8-tops") {
		cfg.Device.Int8TOPS = r.tops
	}
	if f.Changed("model") {
		cfg.Device.Model = r.model
	}
	if f.Changed("export-outputs") {
		cfg.Challenge.ExportOutputs = r.exportOut
	}
	if err := cfg.Validate(); err != nil {
		return cfg, dir, cfgPath, fmt.Errorf("config %s with the environment and flags: %w", cfgPath, err)
	}
	return cfg, dir, cfgPath, nil
}

// drain lets n finish its open challenges (node.Node.Drain) for at most
// timeout, or until a second SIGINT or SIGTERM.
func drain(n *node.Node, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		select {
		case <-sig:
			log.Warn("second signal: stopping without draining")
			cancel()
		case <-ctx.Done():
		}
	}()
	log.Info("draining: finishing the challenges this node proves, issued or judges; a second signal stops at once", "up_to", timeout)
	start := time.Now()
	if err := n.Drain(ctx); err == nil {
		log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
	}
}
