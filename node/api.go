package node

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

//go:embed web/index.html
var webFiles embed.FS

// webFS is the live page, served at / beside the API.
var webFS, _ = fs.Sub(webFiles, "web")

// APIVersion prefixes every route of the HTTP API.
const APIVersion = "/api/v1"

// StatusView is the body of GET /api/v1/status.
type StatusView struct {
	PeerID         string    `json:"peer_id"`
	Role           Role      `json:"role"`
	Addrs          []string  `json:"addrs"`
	Epoch          uint64    `json:"epoch"`
	EpochLength    string    `json:"epoch_length"`
	ConnectedPeers int       `json:"connected_peers"`
	LivePeers      int       `json:"live_peers"`
	Claim          ClaimView `json:"claim"`
	Stats          Stats     `json:"stats"`
}

// ClaimView is a device claim as the API shows it.
type ClaimView struct {
	Model      string  `json:"model"`
	Backend    string  `json:"backend"`
	Int8TOPS   float64 `json:"int8_tops"`
	BF16TFLOPS float64 `json:"bf16_tflops"`
	HashGHps   float64 `json:"hash_ghps"`
	VRAMBytes  uint64  `json:"vram_bytes"`
}

// PeerView is one entry of GET /api/v1/peers.
type PeerView struct {
	PeerID    string    `json:"peer_id"`
	Self      bool      `json:"self"`
	Connected bool      `json:"connected"`
	LastSeen  time.Time `json:"last_claim"`
	Claim     ClaimView `json:"claim"`
	// Score is the integrity score (EigenTrust, scoring.PeerTrust.Score).
	Score float64 `json:"score"`
	// New is true while this node holds no evidence about the peer: its
	// score of 0 then says nothing.
	New bool `json:"new"`
	// GossipScore is gossipsub's score of the peer in this node's router
	// (application score plus the router's counters; below −80 it is
	// graylisted).
	GossipScore float64 `json:"gossip_score"`
	// Flags are inconsistencies found in the claim's NVML report or in
	// the speed of its proofs; empty when none.
	Flags []string `json:"flags"`
}

// TopologyView is the body of GET /api/v1/topology: this node's gossip mesh
// per topic and its connections, each mesh peer with its integrity score.
type TopologyView struct {
	PeerID      string                `json:"peer_id"`
	Mesh        map[string][]MeshPeer `json:"mesh"`
	Connections []p2p.Conn            `json:"connections"`
}

// MeshPeer is a peer in this node's mesh of one topic.
type MeshPeer struct {
	PeerID string  `json:"peer_id"`
	Score  float64 `json:"score"`
}

// Topology returns this node's mesh and connections.
func (n *Node) Topology() TopologyView {
	t := TopologyView{PeerID: n.id.String(), Mesh: map[string][]MeshPeer{}, Connections: n.host.Conns()}
	for topic, peers := range n.host.Mesh() {
		for _, p := range peers {
			t.Mesh[topic] = append(t.Mesh[topic], MeshPeer{PeerID: p.String(), Score: n.book.Score(p.String())})
		}
	}
	if t.Connections == nil {
		t.Connections = []p2p.Conn{}
	}
	return t
}

// Status returns the node's status.
func (n *Node) Status() StatusView {
	s := StatusView{PeerID: n.id.String(), Role: n.role, Epoch: n.clock.At(time.Now()), EpochLength: n.clock.Length.String(),
		ConnectedPeers: len(n.host.ConnectedPeers()), Claim: claimView(n.claims.own), Stats: n.Stats()}
	for _, a := range n.host.Addrs() {
		s.Addrs = append(s.Addrs, a.String())
	}
	n.ev.snapshot(func() { s.LivePeers = len(n.claims.livePeers(time.Now())) })
	return s
}

// GossipScores returns gossipsub's current score of each peer it scores:
// poai's application score plus the router's own counters.
func (n *Node) GossipScores() map[peer.ID]float64 { return n.host.PeerScores() }

// Peers returns the peers this node has a claim from, sorted by peer ID.
func (n *Node) Peers() []PeerView {
	out := []PeerView{}
	n.ev.snapshot(func() {
		for id, e := range n.claims.peers {
			flags := append([]string{}, e.flags...)
			if e.slowProof != "" {
				flags = append(flags, e.slowProof)
			}
			if f := n.claims.speedFlag(id); f != "" {
				flags = append(flags, f)
			}
			out = append(out, PeerView{PeerID: id.String(), LastSeen: e.seen.UTC(), Claim: claimView(e.claim), Flags: flags})
		}
	})
	connected := n.host.ConnectedPeers()
	gossip := n.host.PeerScores()
	for i := range out {
		id, _ := peer.Decode(out[i].PeerID)
		out[i].GossipScore = gossip[id]
		out[i].Self = id == n.id
		out[i].Connected = out[i].Self || slices.Contains(connected, id)
		out[i].Score = n.book.Score(out[i].PeerID)
		if pt, ok := n.book.PeerTrust(out[i].PeerID); !out[i].Self && (!ok || pt.Evidence == 0) {
			out[i].New = true
		}
	}
	slices.SortFunc(out, func(a, b PeerView) int {
		if a.PeerID < b.PeerID {
			return -1
		}
		if a.PeerID > b.PeerID {
			return 1
		}
		return 0
	})
	return out
}

func claimView(c interface {
	GetModel() string
	GetBackend() string
	GetInt8Tops() float64
	GetBf16Tflops() float64
	GetHashGhps() float64
	GetVramBytes() uint64
}) ClaimView {
	return ClaimView{Model: c.GetModel(), Backend: c.GetBackend(), Int8TOPS: c.GetInt8Tops(), BF16TFLOPS: c.GetBf16Tflops(),
		HashGHps: c.GetHashGhps(), VRAMBytes: c.GetVramBytes()}
}

// APIHandler returns the node's versioned JSON API:
//
//	GET /                           the live page: mesh graph coloured by score, per-peer history
//	GET /api/v1/status              this node: peer ID, addresses, epoch, claim, counters
//	GET /api/v1/peers               peers with a device claim, their claims and scores
//	GET /api/v1/trust?from=&to=     EigenTrust vectors per epoch (default: the last)
//	GET /api/v1/attestations?epoch=N  attestations recorded for an epoch
//	GET /api/v1/scores[?peer=ID]    score summaries of every scored peer, or one
//	GET /api/v1/topology            gossip mesh per topic and connections
//	GET /api/v1/proofs              this node's latest challenges as a target:
//	                                its proof, opening, the verdicts heard, what to check
//	POST /api/v1/challenges {"peer": ID}
//	                                challenge a peer now (see ChallengeNow)
//	GET /api/v1/attestations?peer=ID[&limit=N]
//	                                attestations about a peer, most recent first
//
// A non-empty token is required as "Authorization: Bearer <token>" on
// every request but the page's own (RequireToken: failed logins are
// rate-limited per address); an operator who exposes the API beyond
// localhost must set one. Every response carries SecurityHeaders, with a
// Content-Security-Policy that admits only the page's own script. Serve it
// behind HostGuard (DNS rebinding) and ServeHTTP (connection limits).
func (n *Node) APIHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+APIVersion+"/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, n.Status()) })
	mux.HandleFunc("GET "+APIVersion+"/peers", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, n.Peers()) })
	mux.HandleFunc("GET "+APIVersion+"/scores", func(w http.ResponseWriter, r *http.Request) {
		var ids []string
		if p := r.URL.Query().Get("peer"); p != "" {
			if _, err := peer.Decode(p); err != nil {
				http.Error(w, "peer: not a peer ID: "+err.Error(), http.StatusBadRequest)
				return
			}
			ids = []string{p}
		} else {
			for _, rec := range n.book.Peers() {
				ids = append(ids, rec.Peer)
			}
		}
		out := make([]scoring.Summary, 0, len(ids))
		for _, id := range ids {
			s, err := n.book.Summarize(id)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			out = append(out, s)
		}
		writeJSON(w, out)
	})
	mux.Handle("GET /{$}", http.FileServerFS(webFS))
	mux.HandleFunc("POST "+APIVersion+"/challenges", func(w http.ResponseWriter, r *http.Request) {
		// A JSON content type cannot be sent cross-origin without a
		// preflight, so no web page can trigger a challenge.
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
			return
		}
		var req struct {
			Peer string `json:"peer"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			http.Error(w, "body: want {\"peer\": \"<peer ID>\"}: "+err.Error(), http.StatusBadRequest)
			return
		}
		target, err := peer.Decode(req.Peer)
		if err != nil {
			http.Error(w, "peer: not a peer ID: "+err.Error(), http.StatusBadRequest)
			return
		}
		out, err := n.ChallengeNow(target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET "+APIVersion+"/proofs", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, n.Proofs()) })
	mux.HandleFunc("GET "+APIVersion+"/voids", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, n.Voids()) })
	mux.HandleFunc("GET "+APIVersion+"/topology", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, n.Topology()) })
	mux.HandleFunc("GET "+APIVersion+"/network", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, n.Network()) })
	mux.HandleFunc("GET "+APIVersion+"/trust", func(w http.ResponseWriter, r *http.Request) {
		// The trust vectors of epochs [from, to] (default: the last one).
		v, ok := n.book.Trust()
		from, to := v.Epoch, v.Epoch
		for name, dst := range map[string]*uint64{"from": &from, "to": &to} {
			if q := r.URL.Query().Get(name); q != "" {
				e, err := strconv.ParseUint(q, 10, 64)
				if err != nil {
					http.Error(w, name+": an epoch number is required", http.StatusBadRequest)
					return
				}
				*dst = e
			}
		}
		if !ok && r.URL.Query().Get("from") == "" {
			writeJSON(w, []scoring.TrustVector{})
			return
		}
		if to < from || to-from > 1024 {
			http.Error(w, "from, to: need from <= to and at most 1024 epochs", http.StatusBadRequest)
			return
		}
		out, err := n.book.TrustHistory(from, to)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET "+APIVersion+"/attestations", func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query().Get("epoch"); q != "" {
			e, err := strconv.ParseUint(q, 10, 64)
			if err != nil {
				http.Error(w, "epoch: an epoch number is required", http.StatusBadRequest)
				return
			}
			out, err := n.book.EpochAttestations(e)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			writeJSON(w, out)
			return
		}
		p := r.URL.Query().Get("peer")
		if _, err := peer.Decode(p); err != nil {
			http.Error(w, "peer or epoch: a peer ID or an epoch is required: "+err.Error(), http.StatusBadRequest)
			return
		}
		limit := 100
		if l := r.URL.Query().Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 1 || n > 10000 {
				http.Error(w, "limit: an integer in [1, 10000]", http.StatusBadRequest)
				return
			}
			limit = n
		}
		out, err := n.book.Attestations(p, limit)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, out)
	})
	var h http.Handler = mux
	if token != "" {
		// The page itself holds no data; it sends the token.
		h = RequireToken(token, mux, "/")
	}
	return SecurityHeaders(apiCSP, h)
}

// apiCSP is the API's Content-Security-Policy, the live page's (pageCSP).
var apiCSP = func() string {
	page, err := webFiles.ReadFile("web/index.html")
	if err != nil {
		panic("node: embedded live page: " + err.Error())
	}
	return pageCSP(page)
}()

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
