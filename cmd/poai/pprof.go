package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/poai-network/poai/node"
)

// pprofFlagHelp is the help text of --pprof, shared by run and devnet.
const pprofFlagHelp = "serve Go's runtime profiles (heap, goroutines, CPU) at http://ADDR/debug/pprof/, e.g. 127.0.0.1:6060; loopback only, off when empty, behind the API token when one is set (read with 'go tool pprof http://ADDR/debug/pprof/heap')"

// errPprofNotLoopback is why --pprof refuses addr.
func errPprofNotLoopback(addr string) error {
	return fmt.Errorf("--pprof %q: profiles show the node's internals (stacks, allocation sites, its command line) and a CPU profile costs it work; listen on a loopback address such as 127.0.0.1:6060", addr)
}

// servePprof serves net/http/pprof's handlers at http://addr/debug/pprof/
// on a server of its own (the HTTP limits of the API, with a write timeout
// long enough for a 30 s CPU profile). addr must be a loopback host:port,
// so profiles are never served beyond this machine; with a token (the
// API's), every request must carry it, as the API's do. The caller shuts
// the server down.
func servePprof(addr, token string, log *slog.Logger) (*node.HTTPServer, error) {
	if !node.Loopback(addr) {
		return nil, errPprofNotLoopback(addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	var h http.Handler = mux
	if token != "" {
		h = node.RequireToken(token, h)
	}
	srv, err := node.ServeHTTP(addr, node.HostGuard(addr, nil, h), node.DefaultHTTPLimits(), log)
	if err != nil {
		return nil, fmt.Errorf("--pprof %s: %w", addr, err)
	}
	log.Info("pprof listening", "addr", "http://"+srv.Addr().String()+"/debug/pprof/")
	return srv, nil
}
