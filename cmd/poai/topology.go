package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/poai-network/poai/node"
)

func topologyCmd() *cobra.Command {
	var (
		a       apiFlags
		format  string
		network bool
	)
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Export a running node's gossip mesh per topic and its connections (json, dot, graphml)",
		Long: `topology reads the node's gossipsub mesh (kept from GRAFT and PRUNE events; a
peer leaves it when its last connection closes) and its open connections.
--format json prints the API's view; dot (Graphviz) and graphml (Gephi,
networkx) give a graph: one vertex per peer with its integrity score, one edge
per mesh link labelled with its topics, and dashed edges for connections
outside any mesh.

--network exports the whole network as the node sees it instead
(GET /api/v1/network): its own mesh merged with the views of the peers that
share theirs ([p2p] share_topology, on in devnets). The graph is directed:
an edge a -> b says a has b in its mesh, labelled with its topics and the
gossipsub score a gives b; edges from a peer's shared view are self-reported
(dashed in DOT). Vertices carry the node's integrity score, or "new" where it
has no record.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.json && format != "json" {
				return fmt.Errorf("--json and --format %s conflict: --json prints the API's JSON, --format %s a graph; give one", format, format)
			}
			if format != "json" && format != "dot" && format != "graphml" {
				return fmt.Errorf("--format %q: json, dot or graphml", format)
			}
			var (
				t    node.TopologyView
				v    node.NetworkView
				body []byte
				err  error
			)
			if network {
				body, err = a.get("/network", nil, &v)
			} else {
				body, err = a.get("/topology", nil, &t)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case format == "json":
				_, err = out.Write(body)
			case format == "dot" && network:
				err = writeNetworkDot(out, v)
			case format == "dot":
				err = writeDot(out, t)
			case network:
				err = writeNetworkGraphML(out, v)
			default:
				err = writeGraphML(out, t)
			}
			return err
		},
	}
	a.register(cmd)
	cmd.Flags().Lookup("json").Usage = "the same as --format json (the default); an error with another --format"
	cmd.Flags().StringVar(&format, "format", "json", "json, dot or graphml")
	cmd.Flags().BoolVar(&network, "network", false, "export the merged network (this node's mesh and the views its peers share) instead of this node's own")
	return cmd
}

// edge is a link from the node to a peer: the topics whose mesh holds it.
type edge struct {
	peer   string
	score  float64
	topics []string
}

func edges(t node.TopologyView) []edge {
	byPeer := map[string]*edge{}
	for topic, peers := range t.Mesh {
		for _, p := range peers {
			e := byPeer[p.PeerID]
			if e == nil {
				e = &edge{peer: p.PeerID, score: p.Score}
				byPeer[p.PeerID] = e
			}
			e.topics = append(e.topics, topic)
		}
	}
	for _, c := range t.Connections {
		if byPeer[c.Peer.String()] == nil {
			byPeer[c.Peer.String()] = &edge{peer: c.Peer.String(), score: -1}
		}
	}
	out := make([]edge, 0, len(byPeer))
	for _, e := range byPeer {
		sort.Strings(e.topics)
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].peer < out[j].peer })
	return out
}

func writeDot(w io.Writer, t node.TopologyView) error {
	var b strings.Builder
	fmt.Fprintf(&b, "graph poai {\n  %q [shape=doublecircle];\n", t.PeerID)
	for _, e := range edges(t) {
		if len(e.topics) == 0 {
			fmt.Fprintf(&b, "  %q -- %q [style=dashed];\n", t.PeerID, e.peer)
			continue
		}
		fmt.Fprintf(&b, "  %q [label=%q];\n", e.peer, fmt.Sprintf("%s\nscore %.3f", short(e.peer), e.score))
		fmt.Fprintf(&b, "  %q -- %q [label=%q];\n", t.PeerID, e.peer, strings.Join(e.topics, "\n"))
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func short(id string) string {
	if len(id) > 8 {
		return "…" + id[len(id)-8:]
	}
	return id
}

type graphml struct {
	XMLName xml.Name `xml:"graphml"`
	NS      string   `xml:"xmlns,attr"`
	Keys    []gmKey  `xml:"key"`
	Graph   gmGraph  `xml:"graph"`
}
type gmKey struct {
	ID   string `xml:"id,attr"`
	For  string `xml:"for,attr"`
	Name string `xml:"attr.name,attr"`
	Type string `xml:"attr.type,attr"`
}
type gmGraph struct {
	EdgeDefault string   `xml:"edgedefault,attr"`
	Nodes       []gmNode `xml:"node"`
	Edges       []gmEdge `xml:"edge"`
}
type gmNode struct {
	ID   string   `xml:"id,attr"`
	Data []gmData `xml:"data"`
}
type gmEdge struct {
	Source string   `xml:"source,attr"`
	Target string   `xml:"target,attr"`
	Data   []gmData `xml:"data"`
}
type gmData struct {
	Key   string `xml:"key,attr"`
	Value string `xml:",chardata"`
}

func writeGraphML(w io.Writer, t node.TopologyView) error {
	g := graphml{NS: "http://graphml.graphdrawing.org/xmlns",
		Keys:  []gmKey{{"score", "node", "score", "double"}, {"topics", "edge", "topics", "string"}, {"mesh", "edge", "mesh", "boolean"}},
		Graph: gmGraph{EdgeDefault: "undirected", Nodes: []gmNode{{ID: t.PeerID}}}}
	for _, e := range edges(t) {
		g.Graph.Nodes = append(g.Graph.Nodes, gmNode{ID: e.peer, Data: []gmData{{"score", fmt.Sprint(e.score)}}})
		g.Graph.Edges = append(g.Graph.Edges, gmEdge{Source: t.PeerID, Target: e.peer,
			Data: []gmData{{"topics", strings.Join(e.topics, " ")}, {"mesh", fmt.Sprint(len(e.topics) > 0)}}})
	}
	return encodeGraphML(w, g)
}

// arc is a directed mesh link of a NetworkView: the topics of from's mesh
// that hold to, with from's gossipsub score of to.
type arc struct {
	from, to     string
	score        float64
	topics       []string
	selfReported bool
}

func arcs(v node.NetworkView) []arc {
	var out []arc
	idx := map[[2]string]int{}
	for _, e := range v.Edges {
		k := [2]string{e.From, e.To}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			out = append(out, arc{from: e.From, to: e.To, score: e.GossipScore, selfReported: e.SelfReported})
			i = len(out) - 1
		}
		out[i].topics = append(out[i].topics, e.Topic)
	}
	return out // v.Edges is sorted by from, to, topic
}

func integrityLabel(n node.NetworkNode) string {
	if n.Integrity == nil {
		return "new"
	}
	return fmt.Sprintf("%.3f", *n.Integrity)
}

func writeNetworkDot(w io.Writer, v node.NetworkView) error {
	var b strings.Builder
	b.WriteString("digraph poai {\n")
	for _, n := range v.Nodes {
		shape := "ellipse"
		if n.Self {
			shape = "doublecircle"
		}
		fmt.Fprintf(&b, "  %q [label=%q, shape=%s];\n", n.PeerID, fmt.Sprintf("%s\nintegrity %s", short(n.PeerID), integrityLabel(n)), shape)
	}
	for _, a := range arcs(v) {
		style := ""
		if a.selfReported {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "  %q -> %q [label=%q%s];\n", a.from, a.to, fmt.Sprintf("%s\ngossip %.2f", strings.Join(a.topics, "\n"), a.score), style)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeNetworkGraphML(w io.Writer, v node.NetworkView) error {
	g := graphml{NS: "http://graphml.graphdrawing.org/xmlns",
		Keys: []gmKey{{"integrity", "node", "integrity", "string"}, {"self", "node", "self", "boolean"},
			{"topics", "edge", "topics", "string"}, {"gossip_score", "edge", "gossip_score", "double"}, {"self_reported", "edge", "self_reported", "boolean"}},
		Graph: gmGraph{EdgeDefault: "directed"}}
	for _, n := range v.Nodes {
		g.Graph.Nodes = append(g.Graph.Nodes, gmNode{ID: n.PeerID, Data: []gmData{{"integrity", integrityLabel(n)}, {"self", fmt.Sprint(n.Self)}}})
	}
	for _, a := range arcs(v) {
		g.Graph.Edges = append(g.Graph.Edges, gmEdge{Source: a.from, Target: a.to, Data: []gmData{
			{"topics", strings.Join(a.topics, " ")}, {"gossip_score", fmt.Sprint(a.score)}, {"self_reported", fmt.Sprint(a.selfReported)}}})
	}
	return encodeGraphML(w, g)
}

func encodeGraphML(w io.Writer, g graphml) error {
	io.WriteString(w, xml.Header)
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(g); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
