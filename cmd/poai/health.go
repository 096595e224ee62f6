package main

import (
	"encoding/json"
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"
)

// readiness is the body of GET /readyz.
type readiness struct {
	Ready bool `json:"ready"`
	// Reasons says what is missing while not ready.
	Reasons        []string `json:"reasons,omitempty"`
	ConnectedPeers int      `json:"connected_peers"`
}

// routeHealth adds the probes a supervisor (systemd, Kubernetes, a load
// balancer in front of a bootstrap node) polls, without a token: they say
// nothing a peer could not learn.
//
//   - GET /healthz: 200 "ok" while the process serves HTTP (liveness).
//   - GET /readyz: 200 when the node has bootstrap peers configured and at
//     least one connected peer, or none configured; 503 otherwise, with
//     the reasons (readiness), as JSON.
//
// run serves them once the node has started, after it has measured its
// backend and made its claim: a supervisor's first liveness probe must
// allow for that (tens of seconds on a CPU). Neither touches the node's
// loop: an unauthenticated probe must not queue work there.
func routeHealth(mux *http.ServeMux, n *node.Node, bootstrap int) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := readiness{ConnectedPeers: len(n.ConnectedPeers())}
		if bootstrap > 0 && r.ConnectedPeers == 0 {
			r.Reasons = append(r.Reasons, "no connected peer (bootstrap peers configured, none reached)")
		}
		r.Ready = len(r.Reasons) == 0
		w.Header().Set("Content-Type", "application/json")
		if !r.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(r)
	})
}

// buildInfo is the poai_build_info gauge: 1, labelled with the version,
// commit, protocol version and Go version of this binary, so dashboards
// can tell which build each node runs (the Prometheus convention of
// go_build_info and prometheus_build_info).
func buildInfo() *prometheus.Registry {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "poai_build_info",
		Help: "Always 1; labels give the poai version, VCS commit, wire protocol version and Go version of this binary.",
	}, []string{"version", "commit", "protocol", "goversion"})
	g.WithLabelValues(version, commit(), p2p.ProtocolVersion, runtime.Version()).Set(1)
	r := prometheus.NewRegistry()
	r.MustRegister(g)
	return r
}
