package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/scoring"
)

func runCmd() *cobra.Command {
	var (
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
		resetStore   bool
		pprofAddr    string
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
column) or an unknown POAI_ variable is an error. SIGINT or SIGTERM shuts it down gracefully: in-flight work is
cancelled, the score store is flushed and closed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				cfgPath = filepath.Join(dir, node.ConfigFile)
			}
			cfg, err := node.LoadConfig(cfgPath)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w (run 'poai init --data-dir %s' first)", err, dir)
			}
			if err != nil {
				return err
			}
			if err := node.CheckEnv(os.Environ()); err != nil {
				return fmt.Errorf("environment: %w", err)
			}
			if err := cfg.ApplyEnv(os.Getenv); err != nil {
				return fmt.Errorf("environment: %w", err)
			}
			f := cmd.Flags()
			if f.Changed("listen") {
				cfg.P2P.Listen = listen
			}
			if f.Changed("bootstrap") {
				cfg.P2P.Bootstrap = bootstrap
			}
			if f.Changed("mdns") {
				cfg.P2P.MDNS = mdns
			}
			if f.Changed("metrics-addr") {
				cfg.Metrics.Listen = metricsAddr
			}
			if f.Changed("api-addr") {
				cfg.API.Listen = apiAddr
			}
			if f.Changed("log-level") {
				cfg.Log.Level = logLevel
			}
			if f.Changed("log-format") {
				cfg.Log.Format = logFormat
			}
			if f.Changed("int8-tops") {
				cfg.Device.Int8TOPS = tops
			}
			if f.Changed("model") {
				cfg.Device.Model = model
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			warnings, err := node.CheckDataDir(dir, cfgPath)
			if err != nil {
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
			log, err := newLogger(cfg.Log.Level, cfg.Log.Format)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				log.Warn(w)
			}
			n, err := node.New(dir, cfg, node.WithLogger(log))
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
				srv, err := servePprof(pprofAddr, log)
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
			log.Info("shutting down")
			for _, srv := range servers {
				errs = append(errs, srv.Shutdown(context.Background()))
			}
			errs = append(errs, n.Close())
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "data-dir", defaultDataDir(), "data directory holding identity.key, config.toml and scores/ (env POAI_PATH)")
	f.StringVar(&cfgPath, "config", "", "config file (default <data-dir>/config.toml)")
	f.StringSliceVar(&listen, "listen", nil, "multiaddrs to listen on, comma-separated (config p2p.listen)")
	f.StringSliceVar(&bootstrap, "bootstrap", nil, "bootstrap peers, full multiaddrs ending in /p2p/<peer ID> (config p2p.bootstrap)")
	f.BoolVar(&mdns, "mdns", true, "discover peers on the local network (config p2p.mdns)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "host:port of the Prometheus /metrics endpoint, empty to disable (config metrics.listen, default 127.0.0.1:9464)")
	f.StringVar(&apiAddr, "api-addr", "", "host:port of the JSON API, empty to disable (config api.listen, default 127.0.0.1:5280; token from api.token or POAI_API_TOKEN)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (config log.level)")
	f.StringVar(&logFormat, "log-format", "text", "text or json (config log.format)")
	f.Float64Var(&tops, "int8-tops", 0, "claimed dense int8 throughput in TOPS; 0 measures the backend at start (config device.int8_tops)")
	f.StringVar(&model, "model", "", "device model to claim; empty uses the backend's own (config device.model)")
	f.StringVar(&pprofAddr, "pprof", "", pprofFlagHelp)
	f.BoolVar(&resetStore, "reset-store", false, "move a damaged score store aside (to scores.broken-<time>) and start with an empty one; its history is lost to this node")
	return cmd
}
