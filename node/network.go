package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/p2p"
)

// Sharing of gossip views ([p2p] share_topology, p2p.TopologyProtocol).
const (
	// viewInterval is how often a sharing node asks each connected peer
	// that shares for its view; a view older than three intervals is
	// dropped (the peer left or stopped answering).
	viewInterval = 5 * time.Second
	// viewTimeout bounds one request.
	viewTimeout = 3 * time.Second
	// viewAskers bounds the requests in flight at once.
	viewAskers = 8
	// maxViews bounds the views kept (and the askers rate-limited): past
	// it the least recently used is forgotten; maxViewBytes bounds their
	// encoded size together, the oldest forgotten first.
	maxViews     = 4096
	maxViewBytes = 16 << 20
)

// viewAnswerRate is how often one asker gets this node's view: one per
// two seconds, bursts of three. An asker over it gets a reset stream.
var viewAnswerRate, viewAnswerBurst = rate.Every(2 * time.Second), 3

// Limits of a TopologyReport this node accepts (errBadTopology beyond):
// p2p.MaxTopologyBytes encoded, maxTopologyTopics topics,
// maxTopologyPeers peers per topic and connected.
const (
	maxTopologyTopics = 64
	maxTopologyPeers  = 1024
)

// errBadTopology is wrapped by decodeTopology's errors.
var errBadTopology = errors.New("bad topology report")

// topologyReport builds h's report at epoch: its mesh per topic with
// scores from PeerScores (0 for a peer gossipsub has not scored yet), and
// its connected peers, everything in byte order, within the limits.
func topologyReport(h *p2p.Host, epoch uint64) *pb.TopologyReport {
	scores := h.PeerScores()
	r := &pb.TopologyReport{Epoch: epoch}
	mesh := h.Mesh()
	topics := make([]string, 0, len(mesh))
	for t := range mesh {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, t := range topics[:min(len(topics), maxTopologyTopics)] {
		peers := mesh[t]
		slices.Sort(peers)
		tm := &pb.TopicMesh{Topic: t}
		for _, id := range peers[:min(len(peers), maxTopologyPeers)] {
			tm.Links = append(tm.Links, &pb.MeshLink{Peer: []byte(id), GossipScore: scores[id]})
		}
		r.Topics = append(r.Topics, tm)
	}
	conns := h.ConnectedPeers()
	slices.Sort(conns)
	for _, id := range conns[:min(len(conns), maxTopologyPeers)] {
		r.Connected = append(r.Connected, []byte(id))
	}
	return r
}

// decodeTopology decodes a TopologyReport and checks it: within the
// limits above, every peer a valid peer ID, every score finite, topics
// named. Its errors wrap errBadTopology.
func decodeTopology(b []byte) (*pb.TopologyReport, error) {
	if len(b) > p2p.MaxTopologyBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errBadTopology, len(b), p2p.MaxTopologyBytes)
	}
	var r pb.TopologyReport
	if err := proto.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadTopology, err)
	}
	if len(r.Topics) > maxTopologyTopics {
		return nil, fmt.Errorf("%w: %d topics, limit %d", errBadTopology, len(r.Topics), maxTopologyTopics)
	}
	if len(r.Connected) > maxTopologyPeers {
		return nil, fmt.Errorf("%w: %d connected peers, limit %d", errBadTopology, len(r.Connected), maxTopologyPeers)
	}
	checkPeer := func(b []byte) error {
		if _, err := peer.IDFromBytes(b); err != nil {
			return fmt.Errorf("%w: peer %x: %v", errBadTopology, b, err)
		}
		return nil
	}
	for _, t := range r.Topics {
		if t.Topic == "" || len(t.Topic) > 256 {
			return nil, fmt.Errorf("%w: topic name of %d bytes", errBadTopology, len(t.Topic))
		}
		if len(t.Links) > maxTopologyPeers {
			return nil, fmt.Errorf("%w: %d mesh peers in %s, limit %d", errBadTopology, len(t.Links), t.Topic, maxTopologyPeers)
		}
		for _, l := range t.Links {
			if err := checkPeer(l.Peer); err != nil {
				return nil, err
			}
			if math.IsNaN(l.GossipScore) || math.IsInf(l.GossipScore, 0) {
				return nil, fmt.Errorf("%w: score %v", errBadTopology, l.GossipScore)
			}
		}
	}
	for _, c := range r.Connected {
		if err := checkPeer(c); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// encodeTopology encodes r deterministically.
func encodeTopology(r *pb.TopologyReport) []byte {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	return b
}

// viewShare is this node's part in TopologyProtocol when the operator
// shares: it answers askers (rate-limited) and asks the peers that share
// for their views, keeping the latest of each for NetworkView.
type viewShare struct {
	host  *p2p.Host
	epoch func() uint64
	// live lists the peers with a live claim: only they are asked, so
	// identities that only connect cannot fill the view.
	live func() []peer.ID

	mu     sync.Mutex
	views  *simplelru.LRU[peer.ID, sharedView]
	bytes  int // encoded size of views
	askers *simplelru.LRU[peer.ID, *rate.Limiter]
}

// sharedView is one peer's latest report and when it came.
type sharedView struct {
	at     time.Time
	report *pb.TopologyReport
	size   int // encoded bytes
}

func newViewShare(h *p2p.Host, epoch func() uint64, live func() []peer.ID) *viewShare {
	v := &viewShare{host: h, epoch: epoch, live: live}
	v.views, _ = simplelru.NewLRU(maxViews, func(_ peer.ID, sv sharedView) { v.bytes -= sv.size })
	v.askers, _ = simplelru.NewLRU[peer.ID, *rate.Limiter](maxViews, nil)
	return v
}

// keep stores id's view; the oldest go while the views exceed
// maxViewBytes. Callers hold v.mu.
func (v *viewShare) keep(id peer.ID, sv sharedView) {
	v.views.Remove(id)
	v.views.Add(id, sv)
	v.bytes += sv.size
	for v.bytes > maxViewBytes && v.views.Len() > 1 {
		v.views.RemoveOldest()
	}
}

// answer is the TopologyProtocol handler's: this node's report, or nil
// when asker is over its rate.
func (v *viewShare) answer(asker peer.ID) []byte {
	v.mu.Lock()
	l, ok := v.askers.Get(asker)
	if !ok {
		l = rate.NewLimiter(viewAnswerRate, viewAnswerBurst)
		v.askers.Add(asker, l)
	}
	allowed := l.Allow()
	v.mu.Unlock()
	if !allowed {
		return nil
	}
	return encodeTopology(topologyReport(v.host, v.epoch()))
}

// run asks the sharing peers for their views every viewInterval until
// ctx ends.
func (v *viewShare) run(ctx context.Context) {
	t := time.NewTicker(viewInterval)
	defer t.Stop()
	for {
		v.collect(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// collect asks every connected peer with a live claim that shares for its
// view, at most viewAskers at a time, all within one viewInterval (peers
// that never answer cannot stretch a sweep), and keeps the answers that
// decode.
func (v *viewShare) collect(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, viewInterval)
	defer cancel()
	sem := make(chan struct{}, viewAskers)
	var wg sync.WaitGroup
	for _, id := range v.live() {
		if !v.host.Connected(id) || !v.host.SharesTopology(id) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			cctx, cancel := context.WithTimeout(ctx, viewTimeout)
			defer cancel()
			b, err := v.host.FetchTopology(cctx, id)
			if err != nil {
				return // a peer over our rate or gone: keep its last view until it ages out
			}
			r, err := decodeTopology(b)
			if err != nil {
				return // a malformed report: keep the last good view until it ages out
			}
			v.mu.Lock()
			v.keep(id, sharedView{at: time.Now(), report: r, size: len(b)})
			v.mu.Unlock()
		}()
	}
	wg.Wait()
}

// fresh returns the views younger than three intervals at now.
func (v *viewShare) fresh(now time.Time) map[peer.ID]*pb.TopologyReport {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[peer.ID]*pb.TopologyReport{}
	for _, id := range v.views.Keys() {
		if sv, ok := v.views.Peek(id); ok && now.Sub(sv.at) < 3*viewInterval {
			out[id] = sv.report
		}
	}
	return out
}

// Bounds of a NetworkView: views are merged until they are reached.
const (
	maxNetworkNodes = 2048
	maxNetworkEdges = 32768
)

// NetworkView is the body of GET /api/v1/network: the network as this
// node sees it, merged from its own mesh and the views its peers shared
// (p2p.TopologyProtocol). Edges from a shared view are self-reported by
// their From peer: shown, never evidence.
type NetworkView struct {
	// Observer is this node's peer ID.
	Observer string `json:"observer"`
	// Epoch is the observer's epoch.
	Epoch uint64 `json:"epoch"`
	// Sharing says whether this node shares and collects views ([p2p]
	// share_topology); false: only its own mesh is here.
	Sharing bool `json:"sharing"`
	// Nodes holds every peer named by any view, by peer ID.
	Nodes []NetworkNode `json:"nodes"`
	// Edges holds the mesh links, one per (from, to, topic), sorted.
	Edges []NetworkEdge `json:"edges"`
}

// NetworkNode is one peer of a NetworkView.
type NetworkNode struct {
	PeerID string `json:"peer_id"`
	// Integrity is the observer's EigenTrust integrity score of the peer
	// in [0,1] (the score of /api/v1/scores); null for a peer the
	// observer holds no evidence about yet, which is new, not bad.
	Integrity *float64 `json:"integrity"`
	// Self marks the observer.
	Self bool `json:"self,omitempty"`
	// Reported says the peer shared its own view, so its edges are in.
	Reported bool `json:"reported"`
}

// NetworkEdge is a mesh link: From has To in its mesh of Topic.
type NetworkEdge struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Topic string `json:"topic"`
	// GossipScore is From's gossipsub score of To (below −80: graylisted).
	GossipScore float64 `json:"gossip_score"`
	// SelfReported marks an edge from From's shared view rather than the
	// observer's own mesh.
	SelfReported bool `json:"self_reported"`
}

// Network returns the merged view of the network (NetworkView).
func (n *Node) Network() NetworkView {
	now := time.Now()
	epoch := n.clock.At(now)
	v := NetworkView{Observer: n.id.String(), Epoch: epoch, Sharing: n.views != nil, Nodes: []NetworkNode{}, Edges: []NetworkEdge{}}
	reports := map[peer.ID]*pb.TopologyReport{}
	if n.views != nil {
		reports = n.views.fresh(now)
	}
	reports[n.id] = topologyReport(n.host, epoch)
	seen := map[peer.ID]bool{}
	add := func(id peer.ID) { seen[id] = true }
	for from, r := range reports {
		if len(seen) >= maxNetworkNodes || len(v.Edges) >= maxNetworkEdges {
			break // a view past these is no longer a picture anyone can read
		}
		add(from)
		for _, c := range r.Connected {
			add(peer.ID(c))
		}
		for _, t := range r.Topics {
			for _, l := range t.Links {
				add(peer.ID(l.Peer))
				v.Edges = append(v.Edges, NetworkEdge{From: from.String(), To: peer.ID(l.Peer).String(), Topic: t.Topic,
					GossipScore: l.GossipScore, SelfReported: from != n.id})
			}
		}
	}
	for id := range seen {
		nd := NetworkNode{PeerID: id.String(), Self: id == n.id, Reported: reports[id] != nil && id != n.id}
		if id == n.id {
			one := 1.0
			nd.Integrity = &one
		} else if pt, ok := n.book.PeerTrust(id.String()); ok && pt.Evidence > 0 {
			s := pt.Score
			nd.Integrity = &s
		}
		v.Nodes = append(v.Nodes, nd)
	}
	slices.SortFunc(v.Nodes, func(a, b NetworkNode) int { return strings.Compare(a.PeerID, b.PeerID) })
	slices.SortFunc(v.Edges, func(a, b NetworkEdge) int {
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		if c := strings.Compare(a.To, b.To); c != 0 {
			return c
		}
		return strings.Compare(a.Topic, b.Topic)
	})
	return v
}
