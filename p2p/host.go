package p2p

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Host.
type Config struct {
	// ListenAddrs are multiaddrs to listen on, e.g.
	// /ip4/0.0.0.0/tcp/4747 and /ip4/0.0.0.0/udp/4747/quic-v1.
	ListenAddrs []string
	// Bootstrap are full multiaddrs (ending in /p2p/<peer ID>) dialed at
	// start and re-dialed while disconnected.
	Bootstrap []string
	// MDNS enables local-network discovery.
	MDNS bool
	// MaxMessageSize bounds any gossipsub message, in bytes.
	MaxMessageSize int
	// ValidatorTimeout bounds one validator call.
	ValidatorTimeout time.Duration
	// ReconnectInterval is how often missing bootstrap peers are re-dialed.
	ReconnectInterval time.Duration
	// ConnLow and ConnHigh are the connection manager's watermarks.
	ConnLow, ConnHigh int
	// Metrics, when set, receives go-libp2p's own metrics (swarm,
	// identify, eventbus, resource manager...); nil disables them.
	Metrics prometheus.Registerer
	// AppScore is the application-specific peer score gossipsub adds to
	// its own (ScoreParams): poai's integrity verdict on the peer. It must
	// be O(1) and never block. Nil scores every peer 0.
	AppScore func(peer.ID) float64
	// TraceFile, when set, receives gossipsub's event trace as JSON lines
	// (pubsub.NewJSONTracer): publish, deliver, reject, duplicate, graft,
	// prune, join and leave events with nanosecond timestamps.
	TraceFile string
	// TraceRemote, when set, is the full multiaddr (ending in /p2p/<peer
	// ID>) of a remote tracer (pubsub.NewRemoteTracer, protocol
	// /libp2p/pubsub/tracer/1.0.0, e.g. `poai trace collect`) that
	// receives the same events, batched and gzipped, beside TraceFile.
	TraceRemote string
	// Topics are the topics gossipsub scores (ScoreParams); nil means
	// Topics, the unsharded names.
	Topics []string
	// HeartbeatInterval, when positive, replaces gossipsub's 1 s
	// heartbeat (mesh maintenance, gossip emission). poai-sim may slow
	// it: a thousand routers in one process run a thousand heartbeats a
	// second.
	HeartbeatInterval time.Duration
	// ScoreInspectInterval is how often gossipsub hands the peer scores to
	// PeerScores (0: every second). Each inspection scores every known
	// peer; poai-sim slows it for a thousand routers in one process.
	ScoreInspectInterval time.Duration
	// Host, when set, is used instead of building a libp2p host (a
	// mocknet peer in poai-sim): ListenAddrs, the transports, the
	// connection and resource managers and Metrics are then the
	// caller's business, and Close closes it.
	Host host.Host
	// PeerGone, when set, is called when a peer has left the network as
	// this host sees it: PeerGoneDelay after its last connection closed,
	// it has not reconnected, and it has left Mesh. It runs on a goroutine
	// of its own, never after Close returns; the peer may reconnect while
	// it runs (check Connected where that matters).
	PeerGone func(peer.ID)
}

// PeerGoneDelay is how long a peer whose last connection closed may take
// to reconnect before it leaves the topology (Mesh) and Config.PeerGone is
// called: a replaced connection or a redial keeps it in place.
const PeerGoneDelay = 500 * time.Millisecond

// DefaultPort is the TCP and UDP (QUIC) port a node listens on unless
// configured otherwise. It is not 4001, the default of Kubo and of other
// libp2p daemons, so that poai and IPFS can run on one machine; nodes
// initialized before the change keep 4001 in their config.toml.
const DefaultPort = 4747

// DefaultConfig listens on all interfaces, TCP and QUIC port DefaultPort,
// with mDNS on and 8 MiB messages.
func DefaultConfig() Config {
	return Config{
		ListenAddrs:       []string{fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultPort), fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DefaultPort)},
		MDNS:              true,
		MaxMessageSize:    8 << 20,
		ValidatorTimeout:  5 * time.Second,
		ReconnectInterval: 15 * time.Second,
		ConnLow:           64,
		ConnHigh:          192,
	}
}

// SeenMessagesTTL is how long gossipsub remembers a message ID
// (pubsub.WithSeenMessagesTTL) with the default heartbeat: a message it
// remembers is neither asked for again (IWANT) nor validated again, so a
// rejected one is not charged twice to the peers that deliver it.
const SeenMessagesTTL = 10 * time.Minute

// seenTTL returns the seen-messages TTL for a heartbeat of hb (0: the
// default): SeenMessagesTTL, or longer with a slow heartbeat, so that it
// always outlasts ten times the span a peer advertises a message in
// gossip (HistoryLength heartbeats): a message is not fetched again while
// anyone can still advertise it.
func seenTTL(hb time.Duration) time.Duration {
	gp := pubsub.DefaultGossipSubParams()
	if hb <= 0 {
		hb = gp.HeartbeatInterval
	}
	return max(SeenMessagesTTL, 10*time.Duration(gp.HistoryLength)*hb)
}

// ErrIgnore, returned by a Validator, drops a message without penalizing
// its sender (gossipsub's ValidationIgnore). Any other error rejects it
// (ValidationReject), which counts against the sender's peer score.
var ErrIgnore = errors.New("ignore message")

// Validator checks a message's payload, authored (and signed) by from. It
// returns the decoded message, which handlers receive as Message.Decoded.
type Validator func(ctx context.Context, from peer.ID, data []byte) (any, error)

// Message is a validated message delivered to a handler.
type Message struct {
	Topic   string
	From    peer.ID // author, verified by the gossipsub signature
	Data    []byte
	Decoded any // what the topic's Validator returned
}

// Handler consumes validated messages of one topic, in order. It must not
// block for long: it runs on the topic's reader goroutine.
type Handler func(Message)

// Host is a libp2p host with gossipsub.
type Host struct {
	cfg    Config
	log    *slog.Logger
	host   host.Host
	ps     *pubsub.PubSub
	mdns   mdns.Service
	mesh   *meshTracer
	tracer traceTee
	notify *network.NotifyBundle

	mu     sync.Mutex
	topics map[string]*pubsub.Topic
	joined map[string]joined
	subs   []*pubsub.Subscription
	scores *scoreBook
	app    func(peer.ID) float64 // Config.AppScore, never nil

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts a host with identity key. It listens, starts gossipsub
// (StrictSign, message IDs by MessageID), mDNS if enabled, and the bootstrap dialer. Call Close to
// stop everything it started.
func New(key crypto.PrivKey, cfg Config, log *slog.Logger) (*Host, error) {
	if log == nil {
		log = slog.Default()
	}
	h := cfg.Host
	if h == nil {
		var err error
		if h, err = newLibp2pHost(key, cfg); err != nil {
			return nil, err
		}
	}
	return start(h, cfg, log)
}

// newLibp2pHost builds the TCP and QUIC libp2p host of cfg with its
// connection and resource managers.
func newLibp2pHost(key crypto.PrivKey, cfg Config) (host.Host, error) {
	if err := CheckPortsFree(cfg.ListenAddrs); err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh)
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	var rmOpts []rcmgr.Option
	metricsOpt := libp2p.DisableMetrics()
	if cfg.Metrics != nil {
		rcmgr.MustRegisterWith(cfg.Metrics)
		reporter, err := rcmgr.NewStatsTraceReporter()
		if err != nil {
			return nil, fmt.Errorf("resource manager metrics: %w", err)
		}
		rmOpts = append(rmOpts, rcmgr.WithTraceReporter(reporter))
		metricsOpt = libp2p.PrometheusRegisterer(cfg.Metrics)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale()), rmOpts...)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.UserAgent(UserAgent),
		metricsOpt,
	)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	return h, nil
}

// start runs gossipsub, discovery and the bootstrap dialer on h.
func start(h host.Host, cfg Config, log *slog.Logger) (*Host, error) {
	var err error
	mesh := newMeshTracer()
	opts := []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMessageIdFn(MessageID),
		pubsub.WithMaxMessageSize(cfg.MaxMessageSize),
		pubsub.WithValidateQueueSize(512),
		pubsub.WithPeerOutboundQueueSize(256),
		pubsub.WithPeerExchange(true),
		pubsub.WithSeenMessagesTTL(seenTTL(cfg.HeartbeatInterval)),
		pubsub.WithRawTracer(mesh),
	}
	if cfg.HeartbeatInterval > 0 {
		gp := pubsub.DefaultGossipSubParams()
		gp.HeartbeatInterval = cfg.HeartbeatInterval
		opts = append(opts, pubsub.WithGossipSubParams(gp))
	}
	app := cfg.AppScore
	if app == nil {
		app = func(peer.ID) float64 { return 0 }
	}
	scores := newScoreBook()
	topics := cfg.Topics
	if topics == nil {
		topics = Topics
	}
	opts = append(opts,
		pubsub.WithPeerScore(ScoreParams(topics, app), Thresholds()),
		pubsub.WithPeerScoreInspect(scores.update, cmp.Or(cfg.ScoreInspectInterval, time.Second)))
	ctx, cancel := context.WithCancel(context.Background())
	var tracer traceTee
	if cfg.TraceFile != "" {
		jt, err := pubsub.NewJSONTracer(cfg.TraceFile)
		if err != nil {
			cancel()
			h.Close()
			return nil, fmt.Errorf("gossipsub trace %s: %w", cfg.TraceFile, err)
		}
		tracer = append(tracer, jt)
	}
	if cfg.TraceRemote != "" {
		ai, err := peer.AddrInfoFromString(cfg.TraceRemote)
		if err != nil {
			cancel()
			h.Close()
			tracer.Close()
			return nil, fmt.Errorf("remote tracer %q: want a multiaddr ending in /p2p/<peer ID>: %w", cfg.TraceRemote, err)
		}
		rt, err := pubsub.NewRemoteTracer(ctx, h, *ai, log)
		if err != nil {
			cancel()
			h.Close()
			tracer.Close()
			return nil, fmt.Errorf("remote tracer %s: %w", cfg.TraceRemote, err)
		}
		tracer = append(tracer, rt)
	}
	if len(tracer) > 0 {
		opts = append(opts, pubsub.WithEventTracer(tracer))
	}
	ps, err := pubsub.NewGossipSub(ctx, h, opts...)
	if err != nil {
		cancel()
		h.Close()
		tracer.Close()
		return nil, fmt.Errorf("gossipsub: %w", err)
	}
	p := &Host{cfg: cfg, log: log, host: h, ps: ps, mesh: mesh, scores: scores, app: app, tracer: tracer, topics: make(map[string]*pubsub.Topic), joined: make(map[string]joined), ctx: ctx, cancel: cancel}
	h.SetStreamHandler(DirectProtocol, p.handleDirect)
	p.notify = &network.NotifyBundle{DisconnectedF: p.disconnected}
	h.Network().Notify(p.notify)
	if cfg.MDNS {
		p.mdns = mdns.NewMdnsService(h, MDNSServiceTag, mdnsNotifee{p})
		if err := p.mdns.Start(); err != nil {
			log.Warn("mDNS discovery unavailable", "err", err)
			p.mdns = nil
		}
	}
	if len(cfg.Bootstrap) > 0 {
		infos, err := ParseBootstrap(cfg.Bootstrap)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.wg.Add(1)
		go p.bootstrapLoop(infos)
	}
	return p, nil
}

// ParseBootstrap parses full multiaddrs (with /p2p/<peer ID>) into address
// infos, merging addresses of the same peer.
func ParseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var mas []multiaddr.Multiaddr
	for _, s := range addrs {
		ma, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap address %q: %w", s, err)
		}
		mas = append(mas, ma)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("bootstrap addresses: %w (each must end in /p2p/<peer ID>)", err)
	}
	return infos, nil
}

func (p *Host) bootstrapLoop(infos []peer.AddrInfo) {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		for _, ai := range infos {
			if ai.ID == p.host.ID() || p.host.Network().Connectedness(ai.ID) == network.Connected {
				continue
			}
			ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
			if err := p.host.Connect(ctx, ai); err != nil && p.ctx.Err() == nil {
				p.log.Warn("bootstrap dial failed", "bootstrap", ai.ID, "err", err)
			} else if err == nil {
				p.host.ConnManager().Protect(ai.ID, "bootstrap")
				p.log.Info("connected to bootstrap peer", "bootstrap", ai.ID)
			}
			cancel()
		}
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
	}
}

type mdnsNotifee struct{ p *Host }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == n.p.host.ID() || n.p.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(n.p.ctx, 10*time.Second)
	defer cancel()
	if err := n.p.host.Connect(ctx, ai); err != nil {
		n.p.log.Debug("mDNS peer dial failed", "remote", ai.ID, "err", err)
		return
	}
	n.p.log.Info("connected to mDNS peer", "remote", ai.ID)
}

// ID returns the local peer ID.
func (p *Host) ID() peer.ID { return p.host.ID() }

// Libp2p returns the underlying libp2p host.
func (p *Host) Libp2p() host.Host { return p.host }

// Addrs returns the host's listen addresses as full multiaddrs ending in
// /p2p/<peer ID>, ready to give others as bootstrap addresses.
func (p *Host) Addrs() []multiaddr.Multiaddr {
	out, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: p.host.ID(), Addrs: p.host.Addrs()})
	return out
}

// Connect dials a peer.
func (p *Host) Connect(ctx context.Context, ai peer.AddrInfo) error { return p.host.Connect(ctx, ai) }

// ConnectedPeers returns the peers with an open connection.
func (p *Host) ConnectedPeers() []peer.ID { return p.host.Network().Peers() }

// Connected reports whether the host has a usable (not limited)
// connection to id.
func (p *Host) Connected(id peer.ID) bool {
	return p.host.Network().Connectedness(id) == network.Connected
}

// disconnected is the network's notification that a connection closed.
// When it was the peer's last one, the peer leaves the topology and
// Config.PeerGone is told, PeerGoneDelay later unless it reconnected by
// then. It runs on the swarm's notification goroutine and never blocks.
func (p *Host) disconnected(_ network.Network, c network.Conn) {
	id := c.RemotePeer()
	if p.Connected(id) {
		return // another connection to the peer remains
	}
	p.mu.Lock()
	if p.ctx.Err() != nil { // closing: Close may be waiting on wg
		p.mu.Unlock()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		t := time.NewTimer(PeerGoneDelay)
		defer t.Stop()
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		if !p.mesh.removeIfGone(id, func() bool { return p.Connected(id) }) {
			return // reconnected
		}
		p.log.Debug("peer gone", "remote", id)
		if p.cfg.PeerGone != nil {
			p.cfg.PeerGone(id)
		}
	}()
}

// MeshPeers returns the peers subscribed to topic that this host knows.
func (p *Host) MeshPeers(topic string) []peer.ID { return p.ps.ListPeers(topic) }

// Join registers v as topic's validator, joins the topic and subscribes,
// delivering validated messages to h in order on one goroutine. Messages
// from the local host are delivered too.
func (p *Host) Join(topic string, v Validator, h Handler) error {
	err := p.ps.RegisterTopicValidator(topic, func(ctx context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		decoded, err := v(ctx, msg.GetFrom(), msg.GetData())
		switch {
		case err == nil:
			msg.ValidatorData = decoded
			return pubsub.ValidationAccept
		case errors.Is(err, ErrIgnore):
			return pubsub.ValidationIgnore
		default:
			p.log.Debug("message rejected", "topic", topic, "from", msg.GetFrom(), "err", err)
			return pubsub.ValidationReject
		}
	}, pubsub.WithValidatorTimeout(p.cfg.ValidatorTimeout))
	if err != nil {
		return fmt.Errorf("register validator %s: %w", topic, err)
	}
	t, err := p.ps.Join(topic)
	if err != nil {
		return fmt.Errorf("join %s: %w", topic, err)
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(1024))
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", topic, err)
	}
	p.mu.Lock()
	p.topics[topic] = t
	p.joined[topic] = joined{v: v, h: h}
	p.subs = append(p.subs, sub)
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			msg, err := sub.Next(p.ctx)
			if err != nil {
				return // cancelled or subscription closed
			}
			h(Message{Topic: topic, From: msg.GetFrom(), Data: msg.GetData(), Decoded: msg.ValidatorData})
		}
	}()
	return nil
}

// Publish publishes data on a joined topic. The local validator runs first;
// a message it rejects is not sent and Publish returns an error.
func (p *Host) Publish(ctx context.Context, topic string, data []byte) error {
	p.mu.Lock()
	t, ok := p.topics[topic]
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("publish: topic %s not joined", topic)
	}
	return t.Publish(ctx, data)
}

// Close stops discovery, the readers and the bootstrap dialer, then closes
// gossipsub and the host. It joins every error.
func (p *Host) Close() error {
	var errs []error
	if p.mdns != nil {
		errs = append(errs, p.mdns.Close())
	}
	p.host.RemoveStreamHandler(DirectProtocol)
	p.host.Network().StopNotify(p.notify)
	p.mu.Lock()
	p.cancel() // under mu: disconnected adds to wg only before it
	for _, s := range p.subs {
		s.Cancel()
	}
	p.subs = nil
	p.mu.Unlock()
	p.wg.Wait()
	errs = append(errs, p.host.Close())
	p.tracer.Close()
	return errors.Join(errs...)
}

// traceTee hands each gossipsub event to every tracer it holds (gossipsub
// takes one event tracer): the JSON file and the remote tracer.
type traceTee []interface {
	pubsub.EventTracer
	Close()
}

// Trace implements pubsub.EventTracer.
func (t traceTee) Trace(evt *pubsubpb.TraceEvent) {
	for _, tr := range t {
		tr.Trace(evt)
	}
}

// Close closes every tracer.
func (t traceTee) Close() {
	for _, tr := range t {
		tr.Close()
	}
}

// LastRPC returns when a gossipsub RPC from id last reached this host
// (before the router's scoring or graylist drops any of it), or the zero
// time when none has since its connection last went. Unlike the
// connection's state it does not outlive a link that went down.
func (p *Host) LastRPC(id peer.ID) time.Time { return p.mesh.lastRPC(id) }

// Mesh returns this host's gossipsub mesh: for each joined topic, the
// peers it is grafted to. A peer leaves it when gossipsub prunes it or
// drops its closed connection, and when the host has had no connection
// to it for PeerGoneDelay.
func (p *Host) Mesh() map[string][]peer.ID { return p.mesh.snapshot() }

// Conn describes one open connection.
type Conn struct {
	Peer      peer.ID `json:"peer_id"`
	Addr      string  `json:"remote_addr"`
	Direction string  `json:"direction"`
	// LatencyMS is the peerstore's moving average of the round trip, 0 if
	// not measured yet.
	LatencyMS float64 `json:"latency_ms"`
}

// Conns returns the open connections.
func (p *Host) Conns() []Conn {
	var out []Conn
	for _, c := range p.host.Network().Conns() {
		id := c.RemotePeer()
		out = append(out, Conn{Peer: id, Addr: c.RemoteMultiaddr().String(), Direction: c.Stat().Direction.String(),
			LatencyMS: float64(p.host.Peerstore().LatencyEWMA(id)) / float64(time.Millisecond)})
	}
	return out
}
