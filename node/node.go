package node

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// Files and folders inside a node's data directory.
const (
	KeyFile    = "identity.key"
	ConfigFile = "config.toml"
	ScoresDir  = "scores"
)

// Node is one poai peer: the daemon around its rooms. It starts and
// closes them (lifecycle.go), validates what arrives (router.go) and hands
// it to the loop goroutine, whose tracker owns every challenge this node
// follows, and answers the API. Its methods are safe from any goroutine.
type Node struct {
	*base
	dir string
	// closeBackend releases a backend Start opened (a GPU).
	closeBackend func() error
	cancel       context.CancelFunc
	state        atomic.Int32 // stateNew, stateStarted, stateFailed or stateClosed
	limiter      *authorLimiter
	// rejected remembers, by author and payload content ID, the messages
	// the validators rejected, so that a repeat of one offence is ignored
	// instead of rejected (and penalized) again (offenceKey).
	rejected   *challenge.ReplayCache
	releaseLag func() // releases processLag, once
	// disk guards the data directory's free space (Fatal).
	disk diskWatch
	// claiming states this node's device claim (honestClaimer, or an
	// adversary's lie).
	claiming claimerRole
	// tk is the loop goroutine's challenge state (tracker).
	tk *tracker
	// views shares and collects gossip views ([p2p] share_topology; nil
	// when off).
	views *viewShare
}

// base is the wiring a node's rooms share: configuration, identity, host,
// score book, clocks and the rooms that publish, queue and remember. New
// and Start fill it in; no field is reassigned once Start has returned.
// Node and tracker embed the same one.
type base struct {
	cfg  Config
	o    options
	log  *slog.Logger
	role Role

	clock     challenge.EpochClock
	planner   challenge.Planner
	workloads []pb.Workload
	validator *challenge.Validator
	cpu       *gpu.CPU
	backend   gpu.Backend
	metrics   *metrics

	key  crypto.PrivKey
	id   peer.ID
	host *p2p.Host
	// shard is this node's shard of cfg.P2P.Shards (p2p.ShardOf).
	shard int
	book  *scoring.Book

	// ctx ends when the node closes; wg counts its goroutines.
	ctx context.Context
	wg  sync.WaitGroup
	// ev is the loop goroutine's queue (loop).
	ev events
	// gossip sends this node's messages (set up in Start).
	gossip gossip
	// nvmlIndex is NVML's index of the device this node proves on (-1:
	// none), matched by PCI location.
	nvmlIndex int
	// startEpoch is the first epoch this node ran (RoleOnOff counts from it).
	startEpoch *uint64
	// app is what gossipsub's peer scoring reads: each peer's application
	// score and the unverifiable claims (appscore.go).
	app appScores
	// claims holds the peers' device claims and this node's own;
	// announce publishes its own (loop goroutine only).
	claims   claimBook
	announce announcer
	// earned is what this node knows of the peers' earned trust (loop
	// goroutine only).
	earned earnedTrust

	stats  counters
	delays delayLog
	// outputs appends the llm answers this node verified as passing to
	// [challenge] export_outputs (nil: not exported).
	outputs *outputExport
	// slotsSeen counts the challenger and verifier slots this node saw
	// each peer hold (devnet reports).
	slotsSeen slotLedger
}

// tracker is the loop goroutine's own state: the challenges this node
// follows (tracked, each with its verdictState), what arrived before its
// challenge, the slots and secrets of the challenges it issued, the
// claim requests in flight and the re-check and audit budgets, with the
// roles that decide how it proves, challenges, judges and shares. Its
// methods run on the loop goroutine, except those that say otherwise (the
// prover goroutine's, which reach its state only through ev).
type tracker struct {
	*base
	tracked    map[string]*tracked
	slots      map[string]slotUse   // target/epoch/challenger already challenged
	secrets    map[string]ownSecret // opening secrets of the challenges this node issued
	orphans    map[string]*orphan
	claimWaits map[peer.ID]*claimWait // claim requests in flight (claimfetch.go)
	claimAsked map[peer.ID]uint64     // epoch of the last claim request to each peer
	// heldOpenings is the memory of the opening rows tracked holds
	// (maxHeldOpeningBytes).
	heldOpenings int
	// Re-check and audit budgets of the current epoch.
	rechecks, audits epochBudget
	// proveQ feeds the prover goroutine; verifySem bounds the
	// verifications running off the loop.
	proveQ    chan proveJob
	verifySem chan struct{}
	// validateClaim is the claims topic's validator (Node.validatorFor),
	// which a fetched claim passes as a gossiped one does (set in Start).
	validateClaim p2p.Validator

	// proving answers the challenges addressed to this node (honestProver,
	// or an adversary's role).
	proving proverRole
	// challenging is what this node does as a challenger beyond the
	// protocol (nothing, or an adversary's role).
	challenging challengerRole
	// judging decides whether this node checks what it verifies
	// (honestJudge), or attests without checking (an adversary's).
	judging verdictRole
	// sharing decides whether this node, as a verifier, reveals its
	// listed shares (honestSharer, or an adversary's).
	sharing sharerRole

	// summary is what the epoch's info line reports (logEpoch).
	summary epochSummary
	// proofs is this node's latest challenges as a target (Node.Proofs).
	proofs proofHistory
	// voids are the latest challenges this node voided, with who caused
	// each (voids.go).
	voids voidLog
	// draining: the node stops issuing challenges (Node.Drain).
	draining bool
}

// epochSummary is what happened since the last epoch line: the counters
// then, and the verdicts this node attested since (loop goroutine only).
type epochSummary struct {
	last Stats
	// given are the verdicts this node attested as a verifier; received
	// those heard on its own proofs.
	given, received map[string]int
}

// delayLog keeps the most recent challenge-to-attestation delays for
// TakeAttestationDelays.
type delayLog struct {
	mu sync.Mutex
	d  []time.Duration
}

// maxDelays bounds a delayLog.
const maxDelays = 4096

func (l *delayLog) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) >= maxDelays {
		l.d = l.d[1:]
	}
	l.d = append(l.d, d)
}

// TakeAttestationDelays returns the challenge-to-attestation delays this
// node saw since the last call (at most the latest 4096), each from the
// challenge's issue time on the challenger's clock to the attestation's
// receipt here, and forgets them.
func (n *Node) TakeAttestationDelays() []time.Duration {
	n.delays.mu.Lock()
	defer n.delays.mu.Unlock()
	out := n.delays.d
	n.delays.d = nil
	return out
}

// Stats counts what a node did, for reports.
type Stats struct {
	Issued      int `json:"issued"`
	Answered    int `json:"answered"`
	ProveFailed int `json:"prove_failed"`
	Attested    int `json:"attested"`
}

type peerEntry struct {
	claim    *pb.DeviceClaim
	claimCID cid.Cid
	seen     time.Time
	// flags are inconsistencies found in the claim (challenge.CrossCheck) and
	// in its proofs (a catalog model proving far below its speed).
	flags []string
	// slowProof is the flag set by the last slow passing proof, if any.
	slowProof string
	// lastChallenged is the epoch of the peer's latest first-try
	// challenge this node saw or, before any, the epoch its claim was
	// first heard less a hash of its peer ID modulo challenge.MaxChallengeGap, so
	// that peers first heard together do not all come due at once
	// (challenge.ChallengeDrawn). It can be negative.
	lastChallenged int64
	// voids counts the challenges this node verified that the peer, as
	// their challenger, voided by a missing or late reveal (finalize).
	voids int
	// lastFailed and lastPassed are the epochs of the peer's latest
	// challenges that a verifier in good standing attested a failure
	// (late, no answer, wrong answer, bad proof) and a pass for, or -1
	// (challenge.NeedsFollowUp).
	lastFailed, lastPassed int64
	// failedWorkload is the workload of the latest failed challenge: the
	// one a follow-up repeats.
	failedWorkload pb.Workload
}

// New checks the configuration and prepares a node whose state lives in
// dataDir. Nothing is opened until Start.
func New(dataDir string, cfg Config, opts ...Option) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{log: slog.Default(), role: RoleHonest, warmup: 1500 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	cpu := gpu.NewCPU()
	c := cfg.Challenge
	b := &base{
		cfg: cfg, o: o, role: o.role, log: o.log,
		clock:   challenge.EpochClock{Genesis: time.Unix(c.Genesis, 0), Length: c.EpochLength.Std()},
		planner: c.Planner(),
		cpu:     cpu,
		backend: o.backend,
		metrics: newMetrics(),
	}
	n := &Node{
		base: b, dir: dataDir,
		limiter: newAuthorLimiter(),
		disk:    newDiskWatch(dataDir, o),
		tk: &tracker{
			base:       b,
			tracked:    make(map[string]*tracked),
			slots:      make(map[string]slotUse),
			secrets:    make(map[string]ownSecret),
			orphans:    make(map[string]*orphan),
			claimWaits: make(map[peer.ID]*claimWait),
			claimAsked: make(map[peer.ID]uint64),
			proveQ:     make(chan proveJob, 16),
			verifySem:  make(chan struct{}, 1),
		},
	}
	for _, w := range c.Workloads {
		wl, _ := ParseWorkload(w) // checked by Validate
		n.workloads = append(n.workloads, wl)
	}
	n.ev = events{q: make(chan func(), 4096), wg: &n.wg}
	n.planner.Catalog = o.catalog
	n.claims = claimBook{
		peers: make(map[peer.ID]*peerEntry), speed: scoring.NewSpeedMonitor(scoring.DefaultSpeedParams()), clock: n.clock, cat: cmp.Or(o.catalog, gpu.DefaultCatalog),
		planner: n.planner, workloads: n.workloads, rate: c.Rate,
		ttl: peerTTL(c.PeerTTLEpochs, n.clock.Length), addrTTL: time.Duration(c.PeerTTLEpochs) * n.clock.Length,
		app: &n.app, metrics: n.metrics, log: o.log,
	}
	n.earned = newEarnedTrust(&n.app, cfg.Scoring.PreTrusted)
	n.announce = announcer{ev: &n.ev, gossip: &n.gossip, log: o.log, announcedTo: make(map[peer.ID]bool)}
	n.validator = challenge.NewValidator(challenge.DefaultLimits(), n.clock, 1<<16, challenge.WithCatalog(o.catalog))
	n.rejected = challenge.NewReplayCache(maxRejected, max(n.validator.ReplayTTL(), p2p.SeenMessagesTTL))
	n.tk.proving = proverFor(n)
	n.tk.challenging = challengingFor(n)
	n.claiming = claimerFor(n.role)
	n.tk.judging = verdictRoleFor(n)
	n.tk.sharing = sharerFor(n.role)
	n.app.routing, n.app.preTrusted, n.app.gauge = routingFor(n.role), cfg.Scoring.PreTrusted, n.metrics.score
	return n, nil
}

// Shard returns this node's shard and the network's shard count.
func (n *Node) Shard() (shard, shards int) { return n.shard, max(n.cfg.P2P.Shards, 1) }

// loop owns the node's protocol state and runs every event in order.
func (n *Node) loop() {
	defer n.wg.Done()
	n.ev.after(n.o.warmup, n.announce.publish)
	n.ev.after(n.o.warmup+claimRecheck, n.announce.reannounce)
	now := time.Now()
	next := n.clock.At(now) + 1
	if now.Before(n.clock.Genesis) {
		next = 0
	}
	n.ev.after(time.Until(n.clock.Start(next)), func() { n.tk.onEpoch(next) })
	for {
		select {
		case <-n.ctx.Done():
			return
		case f := <-n.ev.q:
			f()
		}
	}
}

// counters are a node's Stats. Safe for concurrent use.
type counters struct {
	mu sync.Mutex
	s  Stats
}

// bump changes the counters by f.
func (c *counters) bump(f func(*Stats)) {
	c.mu.Lock()
	f(&c.s)
	c.mu.Unlock()
}

// get returns a copy of the counters.
func (c *counters) get() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

// ID returns the node's peer ID (valid after Start).
func (n *Node) ID() peer.ID { return n.id }

// Role returns the node's role.
func (n *Node) Role() Role { return n.role }

// Addrs returns the node's full listen multiaddrs (with /p2p/<peer ID>).
func (n *Node) Addrs() []multiaddr.Multiaddr { return n.host.Addrs() }

// Book returns the node's score book.
func (n *Node) Book() *scoring.Book { return n.book }

// Registry returns the node's Prometheus registry.
func (n *Node) Registry() prometheus.Gatherer { return n.metrics.registry }

// Stats returns a copy of the node's counters.
func (n *Node) Stats() Stats { return n.stats.get() }

// Claim returns this node's device claim.
func (n *Node) Claim() *pb.DeviceClaim { return proto.Clone(n.claims.own).(*pb.DeviceClaim) }

// ConnectedPeers returns the peers this node has a connection to.
func (n *Node) ConnectedPeers() []peer.ID { return n.host.ConnectedPeers() }

// shortID returns the last 8 characters of a peer ID, as logs show it.
func shortID(id peer.ID) string {
	s := id.String()
	if len(s) > 8 {
		return s[len(s)-8:]
	}
	return s
}
