package node

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/cuda"
	"github.com/poai-network/poai/gpu/nvml"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// Files and folders inside a node's data directory.
const (
	KeyFile    = "identity.key"
	ConfigFile = "config.toml"
	ScoresDir  = "scores"
)

// Option configures a Node.
type Option func(*options)

type options struct {
	newHost      func(crypto.PrivKey) (host.Host, error)
	compactStore bool
	heartbeat    time.Duration
	inspect      time.Duration
	loss         float64
	log          *slog.Logger
	backend      gpu.Backend
	// releaseBackend, when set, releases backend at Close.
	releaseBackend func() error
	role           Role
	measured       *gpu.Throughput
	warmup         time.Duration
	// catalog is the device catalog claims are planned from (nil:
	// gpu.DefaultCatalog).
	catalog *gpu.DeviceCatalog
	// ADVERSARY wiring (devnet and tests only): a colluder's clique, a
	// relay's accomplice device.
	clique     []peer.ID
	accomplice gpu.Backend
	leak       *Leak
	// freeSpace and diskEvery replace the disk watch's statfs and period
	// (WithFreeSpace).
	freeSpace func(string) (uint64, error)
	diskEvery time.Duration
}

// WithClique (ADVERSARY, devnet and tests only) names the peers a
// colluder or sybil vouches for.
func WithClique(ids []peer.ID) Option { return func(o *options) { o.clique = ids } }

// WithAccomplice (ADVERSARY, devnet and tests only) gives a relay the
// device it forwards its challenges to.
func WithAccomplice(b gpu.Backend) Option { return func(o *options) { o.accomplice = b } }

// WithLeak (ADVERSARY, devnet and tests only) gives a colluding
// challenger, or its target, the side channel between them.
func WithLeak(l *Leak) Option { return func(o *options) { o.leak = l } }

// WithHost makes the node run on the libp2p host that newHost returns for
// its identity key instead of building one from [p2p] listen: poai sim
// passes mocknet peers. The node closes the host.
func WithHost(newHost func(crypto.PrivKey) (host.Host, error)) Option {
	return func(o *options) { o.newHost = newHost }
}

// WithHeartbeat replaces gossipsub's 1 s heartbeat (p2p.Config's
// HeartbeatInterval), for many nodes in one process (poai sim).
func WithHeartbeat(d time.Duration) Option { return func(o *options) { o.heartbeat = d } }

// WithScoreInspect sets how often gossipsub's peer scores are copied for
// the API (p2p.Config's ScoreInspectInterval, default 1 s), for many
// nodes in one process (poai sim).
func WithScoreInspect(d time.Duration) Option { return func(o *options) { o.inspect = d } }

// WithCompactStore opens the score store with scoring.Params.Compact, for
// many nodes in one process (poai sim).
func WithCompactStore() Option { return func(o *options) { o.compactStore = true } }

// WithLoss makes the node lose fraction p in [0, 1] of the messages other
// peers send it, at random, before reading them (fault injection for poai
// sim: mocknet links delay but never drop). A lost message is neither
// handled nor forwarded, as if every copy of it had been lost on the way
// in; gossip redelivers none, since the router has seen it. Counted as
// poai_messages_total{result="ignore", reason="loss"}.
func WithLoss(p float64) Option { return func(o *options) { o.loss = min(max(p, 0), 1) } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// withOwnedBackend hands the node the release of its backend: Close (or a
// failed Start) calls release.
func withOwnedBackend(release func() error) Option {
	return func(o *options) { o.releaseBackend = release }
}

// WithCatalog makes the node plan, validate and cross-check claims with
// the models of c instead of gpu.DefaultCatalog: a devnet gives every node
// gpu.DevnetCatalog, so that claims of emulated models (gpu.Emulated
// devices) are held to their floors as real models are. Every node of a
// network must use the same catalog.
func WithCatalog(c *gpu.DeviceCatalog) Option { return func(o *options) { o.catalog = c } }

// WithBackend sets the proving backend (default: the one [device] backend
// names, opened by Start).
func WithBackend(b gpu.Backend) Option { return func(o *options) { o.backend = b } }

// WithRole makes the node an ADVERSARY of the given role. For devnet and
// tests only; see Role.
func WithRole(r Role) Option { return func(o *options) { o.role = r } }

// WithMeasured gives the backend's measured throughput, so Start need not
// measure it. Figures the config sets in [device] take precedence.
func WithMeasured(t gpu.Throughput) Option { return func(o *options) { o.measured = &t } }

// WithWarmup sets how long Start waits for the gossip mesh to form before
// the first claim is published (default 1.5 s: one gossipsub heartbeat plus
// margin).
func WithWarmup(d time.Duration) Option { return func(o *options) { o.warmup = d } }

// Node is one poai peer.
type Node struct {
	cfg  Config
	dir  string
	o    options
	log  *slog.Logger
	role Role

	clock     challenge.EpochClock
	planner   challenge.Planner
	workloads []pb.Workload
	validator *challenge.Validator
	cpu       *gpu.CPU
	backend   gpu.Backend
	// closeBackend releases a backend Start opened (a GPU).
	closeBackend func() error
	metrics      *metrics

	key  crypto.PrivKey
	id   peer.ID
	host *p2p.Host
	// shard is this node's shard of cfg.P2P.Shards (p2p.ShardOf).
	shard int
	book  *scoring.Book

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	events  chan func()
	limiter *authorLimiter
	// rejected remembers, by author and payload content ID, the messages
	// the validators rejected, so that a repeat of one offence is ignored
	// instead of rejected (and penalized) again (offenceKey).
	rejected *challenge.ReplayCache
	// nvmlIndex is NVML's index of the device this node proves on (-1:
	// none), matched by PCI location.
	nvmlIndex int
	// startEpoch is the first epoch this node ran (RoleOnOff counts from it).
	startEpoch *uint64
	// appScores is the gossipsub application score of each peer, from
	// the last trust round (read lock-free by gossipsub).
	appScores atomic.Pointer[map[peer.ID]float64]
	// unverifiable holds the peers whose claims nobody can challenge
	// (FlagUnverifiable), written by the loop, read by gossipsub.
	unverifiable atomic.Pointer[map[peer.ID]bool]
	appMu        sync.Mutex
	appEpoch     *uint64
	// scoreMu orders setScoreGauges and peerGone: a trust round that
	// saw a peer connected sets its series before the peer's disconnection
	// deletes it, never after.
	scoreMu sync.Mutex
	// Re-check and audit budgets of the current epoch (loop goroutine
	// only).
	rechecks, audits epochBudget
	proveQ           chan proveJob
	releaseLag       func() // releases processLag, once
	verifySem        chan struct{}
	// fatal carries the error the node stopped for (Fatal).
	fatal chan error

	// Owned by the loop goroutine.
	claim       *pb.DeviceClaim
	peers       map[peer.ID]*peerEntry
	tracked     map[string]*tracked
	slots       map[string]slotUse   // target/epoch/challenger already challenged
	secrets     map[string]ownSecret // opening secrets of the challenges this node issued
	announcedTo map[peer.ID]bool     // peers connected when the claim was last announced
	orphans     map[string]*orphan
	claimWaits  map[peer.ID]*claimWait // claim requests in flight (claimfetch.go)
	claimAsked  map[peer.ID]uint64     // epoch of the last claim request to each peer
	// heldOpenings is the memory of the opening rows tracked holds
	// (maxHeldOpeningBytes).
	heldOpenings int

	// proving answers the challenges addressed to this node (honestProver,
	// or an adversary's role).
	proving proverRole
	// challenging is what this node does as a challenger beyond the
	// protocol (nothing, or an adversary's role).
	challenging challengerRole
	// Owned by the prover goroutine.
	replay map[pb.Workload]replayAnswer

	statsMu sync.Mutex
	stats   Stats
	delays  delayLog
	// slotsSeen counts the challenger and verifier slots this node saw
	// each peer hold (devnet reports).
	slotsSeen slotLedger
	// earned is what this node knows of the peers' earned trust (loop
	// goroutine only).
	earned earnedTrust
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

// ownSecret is the opening secret of a challenge this node issued.
type ownSecret struct {
	secret []byte
	epoch  uint64
}

// slotUse records the challenge a challenger sent a target in an epoch.
type slotUse struct {
	epoch uint64
	key   string // challenge CID bytes
}

type peerEntry struct {
	claim    *pb.DeviceClaim
	claimCID cid.Cid
	seen     time.Time
	// flags are inconsistencies found in the claim (nvml.CrossCheck) and
	// in its proofs (a catalog model proving far below its speed).
	flags []string
	// slowProof is the flag set by the last slow passing proof, if any.
	slowProof string
	// lastChallenged is the epoch of the peer's latest first-try
	// challenge this node saw or, before any, the epoch its claim was
	// first heard less a hash of its peer ID modulo MaxChallengeGap, so
	// that peers first heard together do not all come due at once
	// (challengeDrawn). It can be negative.
	lastChallenged int64
	// voids counts the challenges this node verified that the peer, as
	// their challenger, voided by a missing or late reveal (finalize).
	voids int
	// lastFailed and lastPassed are the epochs of the peer's latest
	// challenges that a verifier in good standing attested a failure
	// (late, no answer, wrong answer, bad proof) and a pass for, or -1
	// (needsFollowUp).
	lastFailed, lastPassed int64
	// failedWorkload is the workload of the latest failed challenge: the
	// one a follow-up repeats.
	failedWorkload pb.Workload
}

// tracked is a challenge this node has seen, with what arrived for it.
type tracked struct {
	ch         *pb.Challenge
	cid        cid.Cid
	target     peer.ID
	challenger peer.ID
	receivedAt time.Time
	verifiers  []peer.ID
	verifier   bool
	com        *pb.Commitment
	comCID     cid.Cid
	comAt      time.Time
	op         *pb.Opening
	secret     []byte // the challenger's revealed opening secret
	revealAt   time.Time
	committed  *challenge.Committed // this node's own proof, when it is the target, until it is opened
	opened     bool
	// slim: op's rows were dropped (slimOpening), so t can no longer be
	// verified or re-checked from it.
	slim      bool
	verifying bool
	attested  bool
	// Re-checks: other verifiers' verdicts, and the truth once this node
	// verified or re-checked the answer itself.
	atts map[peer.ID]heardVerdict
	// digests are the check digests (challenge.CheckDigests) this node
	// computed, alongside its verification or re-check, for itself and
	// for every peer that may verify the challenge; nil entries for
	// workloads without one.
	digests       map[peer.ID][]byte
	truth         pb.Verdict
	truthKnown    bool
	recheckWanted bool
	rechecking    bool
	auditing      bool // tryAudit is computing digests
	// awaitingClaim: no answer came; the verdict waits for the next
	// epoch's claims to tell a silent target from one that did not answer.
	awaitingClaim bool
	// revealedCom is the commitment the challenger's reveal names (the one
	// it received first); openings count only against it.
	revealedCom cid.Cid
	// equivocation holds a second signed commitment of the target, other
	// than com: proof that it committed to two roots (acceptCommitment).
	equivocation *pb.Commitment
	// Verifier shares (shares.go): this node's own share and its signed
	// commitment, when it verifies t; the share commitments heard, by
	// verifier; the revealed shares, by share hash; whether this node
	// revealed its own; when the last secret or share was revealed.
	ownShare      []byte
	ownShareMsg   *pb.Share
	shares        map[peer.ID]*pb.Share
	shareAt       map[peer.ID]time.Time
	shareSecrets  map[string][]byte
	shareRevealed bool
	lastRevealAt  time.Time
}

// answeredInTime reports whether the target's commitment reached this
// node within the challenge's deadline of the challenge itself, on this
// node's clock.
func (t *tracked) answeredInTime() bool {
	return t.com != nil && t.comAt.Sub(t.receivedAt) <= time.Duration(t.ch.GetDeadlineMs())*time.Millisecond
}

// orphan holds a commitment or opening that arrived before its challenge.
type orphan struct {
	coms   []orphanCommitment // at most maxOrphanSenders, first per sender
	shares []orphanShare      // share commitments, at most maxOrphanShares
	at     time.Time
}

// orphanShare is a share commitment with the epoch its reveal named.
type orphanShare struct {
	share *pb.Share
	epoch uint64
}

type orphanCommitment struct {
	com    *pb.Commitment
	comCID cid.Cid
	comAt  time.Time
	from   peer.ID
}

// maxOrphanSenders bounds the commitments held for one unknown challenge,
// so a third peer cannot crowd out the target's.
const maxOrphanSenders = 4

type proveJob struct {
	ch  *pb.Challenge
	cid cid.Cid
	// judges are the challenger and verifiers, who also get the
	// commitment directly.
	judges []peer.ID
	// at is when the challenge passed this node's validator.
	at time.Time
}

// decoded is what the topic validators hand to the handlers.
type decoded struct {
	msg proto.Message
	cid cid.Cid
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
	n := &Node{
		cfg: cfg, dir: dataDir, o: o, role: o.role, log: o.log,
		clock:       challenge.EpochClock{Genesis: time.Unix(c.Genesis, 0), Length: c.EpochLength.Std()},
		planner:     c.Planner(),
		cpu:         cpu,
		backend:     o.backend,
		metrics:     newMetrics(),
		peers:       make(map[peer.ID]*peerEntry),
		tracked:     make(map[string]*tracked),
		slots:       make(map[string]slotUse),
		secrets:     make(map[string]ownSecret),
		announcedTo: make(map[peer.ID]bool),
		orphans:     make(map[string]*orphan),
		claimWaits:  make(map[peer.ID]*claimWait),
		claimAsked:  make(map[peer.ID]uint64),
		events:      make(chan func(), 4096),
		limiter:     newAuthorLimiter(),
		proveQ:      make(chan proveJob, 16),
		verifySem:   make(chan struct{}, 1),
		fatal:       make(chan error, 1),
	}
	for _, w := range c.Workloads {
		wl, _ := ParseWorkload(w) // checked by Validate
		n.workloads = append(n.workloads, wl)
	}
	n.planner.Catalog = o.catalog
	n.validator = challenge.NewValidator(challenge.DefaultLimits(), n.clock, 1<<16, challenge.WithCatalog(o.catalog))
	n.rejected = challenge.NewReplayCache(maxRejected, max(n.validator.ReplayTTL(), p2p.SeenMessagesTTL))
	n.proving = proverFor(n)
	n.challenging = challengingFor(n)
	return n, nil
}

// Start opens the identity, the score book and the host, joins the topics
// and starts the scheduler, the prover and the epoch loop. On failure it
// closes whatever it had opened.
func (n *Node) Start(ctx context.Context) (err error) {
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	n.key, err = p2p.LoadOrCreateKey(filepath.Join(n.dir, KeyFile))
	if err != nil {
		return err
	}
	n.id, err = peer.IDFromPrivateKey(n.key)
	if err != nil {
		return err
	}
	n.log = n.o.log.With("peer", shortID(n.id))
	if n.role.Adversary() {
		n.log = n.log.With("adversary", string(n.role))
	}
	if n.o.releaseBackend != nil {
		undo = append(undo, n.o.releaseBackend)
		n.closeBackend = n.o.releaseBackend
	}
	if n.backend == nil {
		b, err := OpenBackend(n.cfg.Device, n.log)
		if err != nil {
			return err
		}
		n.backend = b
		if c, ok := b.(io.Closer); ok {
			undo = append(undo, c.Close)
			n.closeBackend = c.Close
		}
	}
	claim, err := n.buildClaim(ctx)
	if err != nil {
		return err
	}
	n.claim = claim
	sc := n.cfg.Scoring
	tp := scoring.DefaultTrustParams()
	tp.PreTrusted, tp.Decay, tp.Retention = sc.PreTrusted, sc.Decay, uint64(sc.RetentionEpochs)
	// On a wave schedule a device shared by identities misses in the
	// waves and passes its retries alone: retries forgive isolated misses
	// only.
	tp.RetriesForgiveIsolatedOnly = n.cfg.Challenge.Waves > 0
	if err := n.checkDisk(); err != nil {
		return err
	}
	n.book, err = scoring.Open(filepath.Join(n.dir, ScoresDir), n.id.String(),
		scoring.Params{Initial: sc.Initial, Alpha: sc.Alpha, MinWeight: sc.MinWeight, LatencySamples: 256, Trust: tp, Compact: n.o.compactStore}, n.log)
	if err != nil {
		return err
	}
	for _, kind := range []string{"lsm", "vlog"} {
		n.metrics.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "poai_store_bytes", Help: "Size of the Badger score store on disk, by part (lsm, vlog).", ConstLabels: prometheus.Labels{"part": kind},
		}, func() float64 {
			lsm, vlog := n.book.Size()
			if kind == "lsm" {
				return float64(lsm)
			}
			return float64(vlog)
		}))
	}
	undo = append(undo, n.book.Close)
	if v, ok := n.book.Trust(); ok {
		n.setAppScores(v) // a restarted node carries on with its trust
	}
	n.restoreEarned()
	pc := p2p.DefaultConfig()
	pc.AppScore = n.appScore
	pc.PeerGone = n.peerGone
	pc.ListenAddrs = n.cfg.P2P.Listen
	pc.Bootstrap = n.cfg.P2P.Bootstrap
	pc.MDNS = n.cfg.P2P.MDNS
	pc.ConnLow, pc.ConnHigh = n.cfg.P2P.ConnLow, n.cfg.P2P.ConnHigh
	pc.TraceFile = n.cfg.P2P.TraceFile
	pc.HeartbeatInterval = n.o.heartbeat
	pc.ScoreInspectInterval = n.o.inspect
	n.shard = p2p.ShardOf(n.id, n.cfg.P2P.Shards)
	pc.Topics = p2p.ShardTopics(n.shard, n.cfg.P2P.Shards)
	if n.o.newHost != nil {
		if pc.Host, err = n.o.newHost(n.key); err != nil {
			return fmt.Errorf("libp2p host: %w", err)
		}
	}
	if n.cfg.Metrics.Listen != "" {
		pc.Metrics = n.metrics.registry
	}
	n.host, err = p2p.New(n.key, pc, n.log)
	if err != nil {
		return err
	}
	undo = append(undo, n.host.Close)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	undo = append(undo, func() error { n.cancel(); return nil })
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.watchDisk(n.ctx.Done(), n.cancel)
	}()
	for _, t := range []struct {
		topic  string
		decode func(peer.ID, []byte, time.Time) (proto.Message, cid.Cid, error)
		handle func(peer.ID, decoded, time.Time)
	}{
		{p2p.TopicClaims, wrap(n.validator.Claim), n.onClaim},
		{p2p.TopicChallenges, wrap(n.validator.Challenge), n.onChallenge},
		{p2p.TopicCommitments, wrap(n.validator.Commitment), n.onCommitment},
		{p2p.TopicReveals, wrap(n.validator.Reveal), n.onReveal},
		{p2p.TopicOpenings, wrap(n.validator.Opening), n.onOpening},
		{p2p.TopicAttestation, wrap(n.validator.Attestation), n.onAttestation},
		{p2p.TopicRequests, wrap(n.validator.ChallengeRequest), n.onRequest},
	} {
		handle := conductOf(n.role).handler(t.topic, t.handle)
		if err := n.host.Join(n.topic(t.topic), n.validatorFor(t.topic, t.decode), func(m p2p.Message) {
			at := time.Now() // receipt time on this node's clock
			d, ok := m.Decoded.(decoded)
			if !ok {
				return
			}
			n.post(func() { handle(m.From, d, at) })
		}); err != nil {
			return err
		}
	}
	// A challenge and its reveal also travel straight from the challenger
	// to the target, and the target's commitment and opening straight to
	// the challenger and verifiers (publishTo): gossip alone may not carry
	// them between peers whose scores or mesh links a partition, or a few
	// misses under load, took away — and a peer whose answers cannot reach
	// its verifiers can never clear itself.
	for _, t := range []string{p2p.TopicChallenges, p2p.TopicReveals, p2p.TopicCommitments, p2p.TopicOpenings} {
		if err := n.host.AcceptDirect(n.topic(t)); err != nil {
			return err
		}
	}
	n.host.ServeClaim(n.encodedClaim)
	processLag.acquire()
	n.releaseLag = sync.OnceFunc(processLag.release)
	n.wg.Add(2)
	go n.loop()
	go n.prover()
	n.log.Info("node started", "addrs", n.host.Addrs(), "role", n.role, "claim_model", claim.GetModel(),
		"claim_int8_tops", claim.GetInt8Tops(), "claim_bf16_tflops", claim.GetBf16Tflops(), "claim_hash_ghps", claim.GetHashGhps(),
		"claim_vram_bytes", claim.GetVramBytes(), "epoch", n.clock.At(time.Now()))
	return nil
}

// wrap adapts a typed validator method to one returning proto.Message.
func wrap[M proto.Message](f func(peer.ID, []byte, time.Time) (M, cid.Cid, error)) func(peer.ID, []byte, time.Time) (proto.Message, cid.Cid, error) {
	return func(from peer.ID, data []byte, now time.Time) (proto.Message, cid.Cid, error) {
		return f(from, data, now)
	}
}

// maxRejected bounds the offences Node.rejected remembers.
const maxRejected = 8192

// offenceKey names one offence: an author's payload, whatever envelope
// (gossipsub seqno, hence message ID) carries it.
func offenceKey(from peer.ID, data []byte) string {
	return string(from) + challenge.CIDOf(data).KeyString()
}

// validatorFor returns the pubsub validator of topic: decode and check,
// count the result.
//
// Each offence is counted once: a payload rejected from an author is
// remembered (Node.rejected) and a repeat of it, in a new envelope (the
// author publishing it again) or after gossipsub's seen cache forgot it,
// is ignored, counted as ignore/repeat, instead of rejected again — a
// second rejection would charge a second invalid message (P4, which
// grows with its square) for one offence.
//
// A well-formed message this node has no use for is ignored, not
// accepted (useful): gossipsub gives no first-delivery credit for it and
// does not forward it.
func (n *Node) validatorFor(topic string, decode func(peer.ID, []byte, time.Time) (proto.Message, cid.Cid, error)) p2p.Validator {
	return func(ctx context.Context, from peer.ID, data []byte) (any, error) {
		if n.o.loss > 0 && from != n.id && mrand.Float64() < n.o.loss {
			n.metrics.messages.WithLabelValues(topic, "ignore", "loss").Inc()
			return nil, fmt.Errorf("%w: lost (simulated)", p2p.ErrIgnore)
		}
		offence := offenceKey(from, data)
		if n.rejected.Seen(offence, time.Now()) {
			n.metrics.messages.WithLabelValues(topic, "ignore", "repeat").Inc()
			return nil, fmt.Errorf("%w: %s: a repeat of a message rejected before", p2p.ErrIgnore, from)
		}
		// reject counts one offence once: two copies validated at the same
		// time (gossipsub runs validators concurrently) both miss Seen, and
		// only the first to record the offence rejects.
		reject := func(reason string, err error) (any, error) {
			if !n.rejected.AddIfAbsent(offence, time.Now()) {
				n.metrics.messages.WithLabelValues(topic, "ignore", "repeat").Inc()
				return nil, fmt.Errorf("%w: %s: a repeat of a message rejected before", p2p.ErrIgnore, from)
			}
			n.metrics.messages.WithLabelValues(topic, "reject", reason).Inc()
			return nil, err
		}
		if s := p2p.ShardOf(from, n.cfg.P2P.Shards); s != n.shard {
			return reject("shard", fmt.Errorf("author %s belongs to shard %d, not %d", from, s, n.shard))
		}
		m, c, err := decode(from, data, time.Now())
		if err != nil {
			reason := challenge.Reason(err)
			if errors.Is(err, challenge.ErrOutOfEpoch) {
				n.metrics.outOfEpoch.WithLabelValues(topic).Inc()
			}
			if errors.Is(err, challenge.ErrEpochMismatch) {
				n.metrics.epochMismatch.WithLabelValues(topic).Inc()
			}
			if errors.Is(err, challenge.ErrReplayed) || errors.Is(err, challenge.ErrStale) || errors.Is(err, challenge.ErrEpochMismatch) {
				// Not proof of malice by whoever forwarded it (it may have
				// joined after the original, its clock differs, or it had
				// not heard the challenge yet): drop without a gossipsub
				// penalty.
				n.metrics.messages.WithLabelValues(topic, "ignore", reason).Inc()
				return nil, fmt.Errorf("%w: %v", p2p.ErrIgnore, err)
			}
			return reject(reason, err)
		}
		// Rate limits apply to fresh, valid messages of an author (stale
		// replays never spend its budget) and drop the excess without a
		// gossipsub penalty: the penalty would fall on the forwarder, not
		// on the author.
		if !n.limiter.allow(from, topic, time.Now()) {
			n.metrics.messages.WithLabelValues(topic, "ignore", "rate").Inc()
			return nil, fmt.Errorf("%w: %s: %s over its rate limit", p2p.ErrIgnore, topic, from)
		}
		if reason := n.useless(ctx, topic, from, m); reason != "" {
			n.metrics.messages.WithLabelValues(topic, "ignore", reason).Inc()
			return nil, fmt.Errorf("%w: %s: %s from %s", p2p.ErrIgnore, topic, reason, from)
		}
		if p2p.ViaDirect(ctx) {
			// A direct copy must not make the gossip copy a replay: gossipsub
			// would then not forward it to this node's mesh peers (and its
			// deliverers would earn no credit). The handlers drop the
			// duplicate.
			n.validator.Forget(c)
		}
		n.metrics.messages.WithLabelValues(topic, "accept", "").Inc()
		return decoded{msg: m, cid: c}, nil
	}
}

// useless returns why this node has no use for m, a valid message of
// topic from another peer ("" when it has one): today an attestation of
// a challenge it does not follow (unknown_challenge), one that disagrees
// with its challenge's target, epoch or deadline (mismatch), or one from
// a peer that is not among the challenge's possible verifiers
// (not_verifier) — what onAttestation drops. The loop goroutine, which
// owns the challenges, answers; "" when it cannot before ctx ends (the
// handler checks again).
func (n *Node) useless(ctx context.Context, topic string, from peer.ID, m proto.Message) string {
	a, ok := m.(*pb.Attestation)
	if !ok || from == n.id || n.ctx == nil {
		return ""
	}
	answer := make(chan string, 1)
	select {
	case n.events <- func() { _, reason := n.attestationFor(from, a); answer <- reason }:
	case <-ctx.Done():
		return ""
	case <-n.ctx.Done():
		return ""
	}
	select {
	case r := <-answer:
		return r
	case <-ctx.Done():
	case <-n.ctx.Done():
	}
	return ""
}

// buildClaim returns this node's device claim, measuring the backend for
// every figure the configuration leaves at 0.
func (n *Node) buildClaim(ctx context.Context) (*pb.DeviceClaim, error) {
	info := n.backend.Info()
	d := n.cfg.Device
	if d.Int8TOPS == 0 || d.BF16TFLOPS == 0 || d.HashGHps == 0 {
		m := n.o.measured
		if m == nil {
			ch := n.cfg.Challenge
			t, err := gpu.MeasureAllFor(ctx, n.backend, gpu.MeasureShapes{Int8K: ch.K, Int8M: ch.M, BF16K: ch.BF16K, BF16M: ch.BF16M})
			if err != nil {
				return nil, fmt.Errorf("measure backend: %w", err)
			}
			n.log.Info("measured backend", "backend", info.Backend, "int8_tops", t.Int8TOPS, "bf16_tflops", t.BF16TFLOPS, "hash_ghps", t.HashGHps)
			m = &t
		}
		d.Int8TOPS = cmp.Or(d.Int8TOPS, m.Int8TOPS)
		d.BF16TFLOPS = cmp.Or(d.BF16TFLOPS, m.BF16TFLOPS)
		d.HashGHps = cmp.Or(d.HashGHps, m.HashGHps)
	}
	vram := cmp.Or(d.VRAMBytes, info.MemoryBytes)
	if n.role == RoleForgedNVML { // ADVERSARY: claims an H100, with a forged NVML report to match
		spec, _ := gpu.LookupDevice(ForgedModel)
		d.Model, info.Backend = ForgedModel, "cuda"
		d.HashGHps = 13.3 // what an H200 measured; a CPU does 10^-3 of it
		vram = spec.VRAMBytes
	}
	if f := claimFactor(n.role); f > 1 { // ADVERSARY: claims a faster, bigger device than it has
		d.Int8TOPS *= f
		d.BF16TFLOPS *= f
		d.HashGHps *= f
		vram *= uint64(f)
	}
	claim := &pb.DeviceClaim{
		PeerId: []byte(n.id), Model: cmp.Or(d.Model, info.Model), Count: uint32(max(info.Devices, 1)),
		VramBytes: vram,
		Int8Tops:  d.Int8TOPS, Bf16Tflops: d.BF16TFLOPS, HashGhps: d.HashGHps, Backend: info.Backend,
	}
	claimFor(n.role, claim, n.catalog()) // ADVERSARY: sibling, inflate, vram-dodger
	if n.role == RoleForgedNVML {
		claim.Devices = []*pb.DeviceReport{forgedReport()}
	} else if info.Backend == "cuda" {
		// What the device says of itself goes into the signed claim: the
		// proving device only (one node per GPU).
		reports, err := nvml.Reports()
		n.nvmlIndex = -1
		if err == nil {
			if b, ok := n.backend.(interface{ Device() cuda.DeviceInfo }); ok {
				d := b.Device()
				n.nvmlIndex = nvml.Match(reports, d.PCIDomain, d.PCIBus, d.PCIDevice)
			}
		}
		switch {
		case err != nil:
			n.log.Warn("no NVML report for the claim", "err", err)
		case n.nvmlIndex < 0:
			n.log.Warn("no NVML report matches the CUDA device's PCI location", "reports", len(reports))
		default:
			claim.Devices = reports[n.nvmlIndex : n.nvmlIndex+1]
			if f := nvml.CrossCheckIn(n.catalog(), claim); len(f) > 0 {
				n.log.Warn("this node's claim disagrees with its own NVML report", "findings", f)
			}
		}
	}
	return claim, nil
}

// post runs f on the loop goroutine; it gives up when the node closes.
func (n *Node) post(f func()) {
	select {
	case n.events <- f:
	case <-n.ctx.Done():
	}
}

// after runs f on the loop goroutine once d has passed.
func (n *Node) after(d time.Duration, f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			n.post(f)
		case <-n.ctx.Done():
		}
	}()
}

// publish encodes m and publishes it on topic without blocking the caller.
func (n *Node) publish(topic string, m proto.Message) {
	n.publishTo(topic, m, 0)
}

// publishTo publishes m on topic and also sends it to each peer of to
// over p2p.DirectProtocol, giving up after timeout. The direct copies go
// once the local validator has accepted the message (Publish returned),
// so a message this node would reject never leaves it.
func (n *Node) publishTo(topic string, m proto.Message, timeout time.Duration, to ...peer.ID) {
	n.publishThen(topic, m, timeout, nil, to...)
}

// publishThen is publishTo that also runs accepted, on the publishing
// goroutine, once this node's own validator has accepted m (Publish
// returned no error): what counts a message as sent goes there, so a
// message the node itself refuses is not counted.
func (n *Node) publishThen(topic string, m proto.Message, timeout time.Duration, accepted func(), to ...peer.ID) {
	b, err := challenge.Marshal(m)
	if err != nil {
		n.log.Error("encode message", "topic", topic, "err", err)
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.host.Publish(n.ctx, n.topic(topic), b); err != nil {
			if n.ctx.Err() == nil {
				n.log.Warn("publish failed", "topic", topic, "err", err)
			}
			return
		}
		if accepted != nil {
			accepted()
		}
		for _, p := range to {
			if p == n.id {
				continue
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.sendDirect(topic, b, p, timeout)
			}()
		}
	}()
}

// sendDirect hands an encoded message of topic to peer to over
// p2p.DirectProtocol and counts the outcome.
func (n *Node) sendDirect(topic string, b []byte, to peer.ID, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(n.ctx, timeout)
	defer cancel()
	if err := n.host.SendDirect(ctx, to, n.topic(topic), b); err != nil {
		result := "failed"
		if errors.Is(err, p2p.ErrDirectRejected) {
			result = "rejected" // usually: the gossip copy came first
		}
		n.metrics.direct.WithLabelValues(topic, result).Inc()
		n.log.Debug("direct send not accepted", "topic", topic, "to", shortID(to), "err", err)
		return
	}
	n.metrics.direct.WithLabelValues(topic, "sent").Inc()
}

// topic returns the name of base (one of p2p.Topics) in this node's shard.
func (n *Node) topic(base string) string {
	return p2p.ShardTopic(base, n.shard, n.cfg.P2P.Shards)
}

// Shard returns this node's shard and the network's shard count.
func (n *Node) Shard() (shard, shards int) { return n.shard, max(n.cfg.P2P.Shards, 1) }

// loop owns the node's protocol state and runs every event in order.
func (n *Node) loop() {
	defer n.wg.Done()
	n.after(n.o.warmup, n.publishClaim)
	n.after(n.o.warmup+claimRecheck, n.reannounce)
	now := time.Now()
	next := n.clock.At(now) + 1
	if now.Before(n.clock.Genesis) {
		next = 0
	}
	n.after(time.Until(n.clock.Start(next)), func() { n.onEpoch(next) })
	for {
		select {
		case <-n.ctx.Done():
			return
		case f := <-n.events:
			f()
		}
	}
}

// claimRecheck is how often a node checks for new connections to announce
// its claim to.
const claimRecheck = 2 * time.Second

// reannounce publishes the claim again when the node has connected to
// peers it had not announced it to, so a newcomer learns its neighbours'
// claims within seconds instead of at the next epoch.
func (n *Node) reannounce() {
	n.after(claimRecheck, n.reannounce)
	connected := n.host.ConnectedPeers()
	fresh := false
	for _, p := range connected {
		if !n.announcedTo[p] {
			n.announcedTo[p] = true
			fresh = true
		}
	}
	if len(n.announcedTo) > 4*len(connected)+64 { // forget departed peers
		clear(n.announcedTo)
		for _, p := range connected {
			n.announcedTo[p] = true
		}
	}
	if fresh {
		n.publishClaim()
	}
}

func (n *Node) publishClaim() {
	n.publish(p2p.TopicClaims, n.currentClaim())
}

// livePeers returns the peers with a fresh claim, this node included,
// sorted.
func (n *Node) livePeers(now time.Time) []peer.ID {
	ttl := n.peerTTL()
	out := []peer.ID{n.id}
	for id, e := range n.peers {
		if id != n.id && now.Sub(e.seen) <= ttl {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// onEpoch runs at the start of every epoch: re-announce the claim, forget
// old state, and schedule the challenges this node must issue.
func (n *Node) onEpoch(e uint64) {
	n.after(time.Until(n.clock.Start(e+1)), func() { n.onEpoch(e + 1) })
	now := time.Now()
	n.metrics.epoch.Set(float64(e))
	if n.startEpoch == nil {
		n.startEpoch = &e
	}
	n.rollTrust(e)
	n.after(claimOffset(n.id, e, n.clock.Length), n.publishClaim)
	n.expire(now)
	live := n.livePeers(now)
	judges := n.judges(live, e)
	n.metrics.peers.Set(float64(len(live)))
	// Shards take turns: each shard's slots are shifted by its share of
	// one slot, so the network's challenges are spread over the epoch.
	shard, shards := n.Shard()
	phase := time.Duration(float64(n.clock.Length) * 0.8 / float64(max(len(live), 1)) * float64(shard) / float64(shards))
	for _, target := range live {
		c := challengerFor(e, target, judges)
		n.slotsSeen.note(e, c, nil)
		if target == n.id || c != n.id {
			continue
		}
		// Below rate 1 the challenger draws from its own randomness, so
		// no prover can tell in advance in which epochs it is challenged
		// (a device shared by identities could otherwise take turns),
		// up to a bound on the gap between challenges.
		p := n.peers[target]
		followUp := needsFollowUp(p.lastFailed, p.lastPassed) && n.appScore(target) >= p2p.GraylistThreshold
		if !followUp && !challengeDrawn(int64(e), p.lastChallenged, n.cfg.Challenge.Rate, mrand.Float64()) {
			continue
		}
		if followUp {
			n.metrics.followUps.Inc()
		}
		target := target
		at := n.clock.Start(e).Add(slotOffset(target, live, n.clock.Length) + phase)
		if w := n.cfg.Challenge.Waves; w > 0 {
			at = n.clock.Start(e).Add(waveOffset(e, target, w, n.clock.Length))
		}
		n.after(time.Until(at), func() {
			if _, err := n.issue(e, target); err != nil {
				n.log.Debug("challenge not issued", "target", shortID(target), "err", err)
			}
		})
	}
}

// expire forgets challenges, orphans and peers too old to matter.
func (n *Node) expire(now time.Time) {
	// A challenge is kept three epochs past its own deadline (not the
	// protocol's 10-minute limit, which kept every opening of a busy
	// shard in memory for 20 minutes).
	for k, t := range n.tracked {
		if now.Sub(t.receivedAt) > challenge.FollowEpochs*n.clock.Length+2*time.Duration(t.ch.GetDeadlineMs())*time.Millisecond {
			n.slimOpening(t)
			delete(n.tracked, k)
		}
	}
	for k, s := range n.secrets {
		if s.epoch+3 < n.clock.At(now) {
			delete(n.secrets, k)
		}
	}
	for k, u := range n.slots {
		if u.epoch+3 < n.clock.At(now) {
			delete(n.slots, k)
		}
	}
	for p, e := range n.claimAsked {
		if e+1 < n.clock.At(now) {
			delete(n.claimAsked, p)
		}
	}
	for k, o := range n.orphans {
		if now.Sub(o.at) > 2*time.Minute {
			delete(n.orphans, k)
		}
	}
	for id, p := range n.peers {
		if now.Sub(p.seen) > 10*time.Duration(n.cfg.Challenge.PeerTTLEpochs)*n.clock.Length {
			delete(n.peers, id)
		}
	}
}

// quietEpochs is how long a challenger may go without hearing a target's
// claim (re-announced every epoch) and still challenge it: a target it
// cannot hear probably cannot hear it either (a partition), and its
// misses would count against it. The target stays a live peer for
// [challenge] peer_ttl_epochs, so challenger and verifier assignments
// do not change while the network is split.
const quietEpochs = 2

// issue publishes a challenge of target sized from its latest claim, and
// sends it to target directly too (p2p.DirectProtocol). The
// workload rotates through the configured ones by epoch and target, skipping
// those the claim gives no rate for.
func (n *Node) issue(e uint64, target peer.ID) (cid.Cid, error) {
	return conductOf(n.role).issue(n, e, target)
}

// retryBackoff returns how long after a missed deadline a challenger
// retries: a random time in [epoch/16, epoch/6] (1.5–4 s for 24 s
// epochs), so the retry does not fall in the same burst of load or loss
// that the miss may have.
func (n *Node) retryBackoff() time.Duration {
	lo, hi := n.clock.Length/16, n.clock.Length/6
	return lo + time.Duration(mrand.Int64N(int64(hi-lo)+1))
}

// retryIfMissed issues one retry of this node's challenge key once its
// deadline has passed without a commitment in time on this node's clock:
// a missed deadline is retried, with back-off, before it counts
// (scoring.Book.Roll forgives a miss whose retry passed).
func (n *Node) retryIfMissed(e uint64, target peer.ID, key string) {
	t, ok := n.tracked[key]
	if !ok || len(t.ch.GetRetryOf()) > 0 {
		return
	}
	if t.answeredInTime() {
		return
	}
	// Where many nodes share this process (poai sim, poai devnet), a
	// challenger overloaded while it waited cannot tell a miss from the
	// shared backlog, every verifier there withholds its verdict
	// (withholdTiming), and a retry would only add a proof and its
	// verifications to the backlog: those retries fed the overload that
	// caused the misses. A lone node retries anyway, since verifiers on
	// other machines may have recorded the miss.
	if processLag.shared() && n.overloaded(t.receivedAt, t.receivedAt.Add(deadlineOf(t.ch))) {
		n.metrics.retriesSkipped.Inc()
		n.log.Debug("retry not issued: this node was overloaded", "target", shortID(target))
		return
	}
	if _, err := n.issueTry(e, target, t.cid); err != nil {
		n.log.Debug("retry not issued", "target", shortID(target), "err", err)
	}
}

// issueTry issues a challenge of target, a retry of the challenge
// retryOf unless that is cid.Undef.
func (n *Node) issueTry(e uint64, target peer.ID, retryOf cid.Cid) (cid.Cid, error) {
	p, ok := n.peers[target]
	if !ok || n.ctx.Err() != nil {
		return cid.Undef, errors.New("no claim known for the target")
	}
	if quiet := time.Since(p.seen); quiet > quietEpochs*n.clock.Length {
		return cid.Undef, fmt.Errorf("no claim heard from the target for %v: it is probably unreachable, and a miss would blame it for the network", quiet.Round(time.Second))
	}
	slot := fmt.Sprintf("%s/%d/%s", target, e, n.id)
	if retryOf.Defined() {
		slot += "/retry"
	}
	if _, done := n.slots[slot]; done {
		return cid.Undef, fmt.Errorf("already challenged %s in epoch %d", target, e)
	}
	var plan challenge.Plan
	var err error
	start := int(e) + int(rendezvous("poai/1/workload", []byte(target), n.id)[0])
	if i := slices.Index(n.workloads, p.failedWorkload); i >= 0 && needsFollowUp(p.lastFailed, p.lastPassed) {
		// A follow-up repeats the workload that failed: a device that
		// lies about one resource (memory, a second card) fails only the
		// workload that tests it, and on the rotation those failures
		// would stay a minority of its record.
		start = i
	}
	for i := range n.workloads {
		if plan, err = n.planner.Plan(p.claim, n.workloads[(start+i)%len(n.workloads)]); err == nil {
			break
		}
	}
	if err != nil {
		n.log.Debug("no workload for claim", "target", shortID(target), "err", err)
		return cid.Undef, err
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return cid.Undef, fmt.Errorf("nonce: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return cid.Undef, fmt.Errorf("secret: %w", err)
	}
	ch := &pb.Challenge{
		Version: 1, Epoch: e, Challenger: []byte(n.id), Target: []byte(target), Nonce: nonce,
		IssuedUnixMs: time.Now().UnixMilli(), ClaimCid: p.claimCID.Bytes(), RevealHash: challenge.RevealHash(secret),
	}
	if retryOf.Defined() {
		ch.RetryOf = retryOf.Bytes()
	}
	plan.Apply(ch)
	_, chCID, err := challenge.MessageCID(ch)
	if err != nil {
		return cid.Undef, fmt.Errorf("encode challenge: %w", err)
	}
	n.secrets[chCID.KeyString()] = ownSecret{secret: secret, epoch: e}
	n.challenging.issued(ch, chCID, secret)
	n.slots[slot] = slotUse{epoch: e, key: chCID.KeyString()}
	// Counted as issued only once this node's own validator has accepted
	// it: a challenge it refuses (an epoch out of range, limits) never
	// leaves the node, and publishThen logs why.
	n.publishThen(p2p.TopicChallenges, ch, plan.Deadline, func() {
		n.metrics.issued.Inc()
		if retryOf.Defined() {
			n.metrics.retries.Inc()
		}
		n.bump(func(s *Stats) { s.Issued++ })
		n.log.Debug("challenge issued", "target", shortID(target), "epoch", e, "workload", plan.Workload,
			"anticipated", plan.Anticipated, "deadline", plan.Deadline)
	}, target)
	if !retryOf.Defined() {
		key := chCID.KeyString()
		n.after(plan.Deadline+n.retryBackoff(), func() { n.retryIfMissed(e, target, key) })
	}
	return chCID, nil
}

// FlagUnverifiable marks a claim that cannot be challenged with every
// configured workload that proves what it claims (challenge.Planner.Check:
// int8, and VRAM when it claims memory, must plan within the protocol's
// limits; bf16 may fail alone): it claims more than the network can test,
// so a proof it could not pass would never be asked of it. Such a peer
// gets UnverifiableScore.
const FlagUnverifiable = "unverifiable: no configured workload can be sized for this claim"

// catalog returns the device catalog this node plans from.
func (n *Node) catalog() *gpu.DeviceCatalog { return cmp.Or(n.o.catalog, gpu.DefaultCatalog) }

// plannable returns nil when c can be challenged with the configured
// workloads (challenge.Planner.Check), else why not.
func (n *Node) plannable(c *pb.DeviceClaim) error {
	return n.planner.Check(c, n.workloads)
}

// setUnverifiable records (copy on write, read by gossipsub's score
// function) whether p's claim is unverifiable.
func (n *Node) setUnverifiable(p peer.ID, bad bool) {
	old := map[peer.ID]bool{}
	if m := n.unverifiable.Load(); m != nil {
		old = *m
	}
	if old[p] == bad {
		return
	}
	m := maps.Clone(old)
	if bad {
		m[p] = true
	} else {
		delete(m, p)
	}
	n.unverifiable.Store(&m)
}

func (n *Node) onClaim(from peer.ID, d decoded, at time.Time) {
	c := d.msg.(*pb.DeviceClaim)
	e := &peerEntry{claim: c, claimCID: d.cid, seen: at, flags: nvml.CrossCheckIn(n.catalog(), c), lastFailed: -1, lastPassed: -1}
	e.lastChallenged = initialLastChallenged(from, n.clock.At(at), n.cfg.Challenge.Rate)
	if old, ok := n.peers[from]; ok {
		e.slowProof, e.lastChallenged, e.voids = old.slowProof, old.lastChallenged, old.voids
		e.lastFailed, e.lastPassed, e.failedWorkload = old.lastFailed, old.lastPassed, old.failedWorkload
		if old.claimCID.Equals(d.cid) {
			e.flags = old.flags // same claim: flags already counted
		} else if slices.Contains(old.flags, FlagVoids) {
			e.flags = append(e.flags, FlagVoids) // earned by its conduct, not its claim
		}
	}
	fresh := n.peers[from] == nil || !n.peers[from].claimCID.Equals(d.cid)
	if fresh {
		if err := n.plannable(c); err != nil {
			e.flags = append(slices.Clip(e.flags), FlagUnverifiable)
			n.metrics.flagged.WithLabelValues("unverifiable").Inc()
			n.log.Info("device claim cannot be challenged: a workload it must prove cannot be planned", "peer", shortID(from), "model", c.GetModel(), "err", err)
		}
	}
	n.setUnverifiable(from, slices.Contains(e.flags, FlagUnverifiable))
	if from != n.id {
		// Where to reach it directly (a challenge goes straight to its
		// target) even without a connection or a shared mesh.
		ttl := time.Duration(n.cfg.Challenge.PeerTTLEpochs) * n.clock.Length
		for _, b := range c.GetAddrs() {
			if a, err := multiaddr.NewMultiaddrBytes(b); err == nil {
				n.host.Libp2p().Peerstore().AddAddr(from, a, ttl)
			}
		}
	}
	if fresh && len(e.flags) > 0 && !slices.Equal(e.flags, []string{FlagUnverifiable}) {
		n.metrics.flagged.WithLabelValues("device_report").Inc()
		n.log.Info("device claim inconsistent with its NVML report", "peer", shortID(from), "model", c.GetModel(), "findings", e.flags)
	}
	n.peers[from] = e
}

// checkProofSpeed flags a target whose passing proof of a catalog model
// took longer than the model's anticipated time over nvml.SlowProofFactor:
// a device that passes on the deadline's slack but is weaker than it says.
func (n *Node) checkProofSpeed(t *tracked, latency time.Duration) {
	e, ok := n.peers[t.target]
	if !ok {
		return
	}
	if _, catalog := n.planner.Lookup(e.claim.GetModel()); !catalog {
		return
	}
	pl, err := n.planner.Plan(e.claim, t.ch.GetWorkload())
	if err != nil || pl.Anticipated <= 0 {
		return
	}
	speed := pl.Anticipated.Seconds() / latency.Seconds()
	if speed >= nvml.SlowProofFactor {
		return
	}
	flag := fmt.Sprintf("%v proof ran at %.0f%% of the speed a %s should reach", t.ch.GetWorkload(), 100*speed, e.claim.GetModel())
	if c := t.com; c != nil && nvml.Throttled(c.GetSmClockMhz(), c.GetSmClockMaxMhz()) {
		// A throttled device is slow for a reason its model does not
		// explain: say so rather than call it weaker than it claims.
		flag = fmt.Sprintf("%v proof ran at %.0f%% of a %s's speed while throttled (SM clock %d of %d MHz, %d °C)",
			t.ch.GetWorkload(), 100*speed, e.claim.GetModel(), c.GetSmClockMhz(), c.GetSmClockMaxMhz(), c.GetTemperatureC())
	}
	if e.slowProof == "" {
		n.metrics.flagged.WithLabelValues("slow_proof").Inc()
		n.log.Info("passing proof far below the claimed model's speed", "target", shortID(t.target), "flag", flag)
	}
	e.slowProof = flag
}

// maxTracked bounds the challenges a node follows at once.
const maxTracked = 1 << 14

// legitimate returns why a valid challenge is not one this node acts on,
// or nil. The sender must rank among the two scheduled challengers of the
// target for the epoch in this node's view (one spare for views that
// differ by a peer), send at most one challenge of that target per epoch,
// and ask for exactly the workload, openings and deadline the planner gives
// for the target's claim. So nobody can make a node prove, or verify, a
// challenge sized for another device, pick a target's verifiers by
// grinding nonces, or add passes to a friend's record at will.
func (n *Node) legitimate(ch *pb.Challenge, key string, from peer.ID, at time.Time) error {
	target := peer.ID(ch.GetTarget())
	claim, ok := n.claimOf(target)
	if !ok {
		return errors.New("no claim known for the target")
	}
	ranked := challengerRanking(ch.GetEpoch(), target, n.judges(n.livePeers(at), ch.GetEpoch()))
	_, own := n.secrets[key] // issued here, on this node's view at the epoch's start
	if !own && !slices.Contains(ranked[:min(2, len(ranked))], from) {
		return errors.New("sender is not a scheduled challenger of the target this epoch")
	}
	slot := fmt.Sprintf("%s/%d/%s", target, ch.GetEpoch(), from)
	if r := ch.GetRetryOf(); len(r) > 0 {
		if err := n.legitimateRetry(ch, r, from, target); err != nil {
			return err
		}
		slot += "/retry"
	}
	if prev, dup := n.slots[slot]; dup && !own {
		// Two different challenges of one target from one challenger in an
		// epoch: nodes may have seen them in different orders, so neither
		// can be judged fairly. Void the one being followed.
		if t, ok := n.tracked[prev.key]; ok && !t.attested {
			t.attested = true
			n.metrics.void.WithLabelValues("duplicate").Inc()
			n.log.Info("challenge void: its challenger sent two in one epoch", "challenger", shortID(from), "target", shortID(target))
		}
		return errors.New("sender already challenged the target this epoch")
	}
	plan, err := n.planner.Plan(claim, ch.GetWorkload())
	if err != nil {
		return fmt.Errorf("no plan for the target's claim: %w", err)
	}
	if !plan.Matches(ch) {
		return errors.New("workload, openings or deadline differ from the plan for the target's claim")
	}
	if len(n.tracked) >= maxTracked {
		return errors.New("too many challenges in flight")
	}
	n.slots[slot] = slotUse{epoch: ch.GetEpoch(), key: key}
	return nil
}

// retryOf returns the string form of ch's retry_of CID, "" for a first
// try (or one that does not parse: the validator already rejected those).
func retryOf(ch *pb.Challenge) string {
	if len(ch.GetRetryOf()) == 0 {
		return ""
	}
	c, err := cid.Cast(ch.GetRetryOf())
	if err != nil {
		return ""
	}
	return c.String()
}

// legitimateRetry checks a retry (a challenge with retry_of) against the
// challenge it retries, when this node saw that one: the same challenger,
// target and epoch, not itself a retry, and not answered in time on this
// node's clock. A retry of a challenge this node never saw (lost, or sent
// before it joined) is taken on trust: it costs the target at most one
// extra challenge per challenger and epoch (the retry slot), and a retry
// of nothing forgives nothing.
func (n *Node) legitimateRetry(ch *pb.Challenge, retryOf []byte, from, target peer.ID) error {
	rc, err := cid.Cast(retryOf)
	if err != nil {
		return fmt.Errorf("retry_of: %w", err)
	}
	orig, ok := n.tracked[rc.KeyString()]
	if !ok {
		return nil
	}
	switch {
	case orig.challenger != from || orig.target != target || orig.ch.GetEpoch() != ch.GetEpoch():
		return errors.New("retry of another challenger's, target's or epoch's challenge")
	case len(orig.ch.GetRetryOf()) > 0:
		return errors.New("retry of a retry")
	case orig.answeredInTime():
		return errors.New("retry of a challenge answered in time")
	}
	return nil
}

func (n *Node) onChallenge(from peer.ID, d decoded, at time.Time) {
	ch := d.msg.(*pb.Challenge)
	key := d.cid.KeyString()
	if _, dup := n.tracked[key]; dup {
		return
	}
	if n.awaitClaim(from, d, at) {
		return // judged once the sender's claim is in (claimFetched)
	}
	if err := n.legitimate(ch, key, from, at); err != nil {
		n.metrics.ignored.Inc()
		n.log.Debug("challenge ignored", "challenge", d.cid, "from", shortID(from), "reason", err)
		return
	}
	target := peer.ID(ch.GetTarget())
	if p, ok := n.peers[target]; ok && len(ch.GetRetryOf()) == 0 {
		p.lastChallenged = max(p.lastChallenged, int64(min(ch.GetEpoch(), math.MaxInt64)))
	}
	t := &tracked{ch: ch, cid: d.cid, target: target, challenger: from, receivedAt: at}
	t.verifiers = verifiersFor(ch.GetEpoch(), target, from, n.judges(n.livePeers(at), ch.GetEpoch()), n.cfg.Challenge.Verifiers)
	t.verifier = slices.Contains(t.verifiers, n.id)
	n.slotsSeen.note(ch.GetEpoch(), "", t.verifiers)
	n.tracked[key] = t
	if target == n.id {
		select {
		case n.proveQ <- proveJob{ch: ch, cid: d.cid, judges: append(slices.Clone(t.verifiers), from), at: at}:
		default:
			n.metrics.droppedJobs.Inc()
			n.log.Warn("prove queue full, challenge dropped", "challenge", d.cid)
		}
	}
	if t.verifier {
		deadline := time.Duration(ch.GetDeadlineMs()) * time.Millisecond
		n.after(time.Until(at.Add(2*deadline+time.Second)), func() { n.finalize(t) })
		if target != n.id {
			n.publishShare(t)
		}
	}
	if o, ok := n.orphans[key]; ok {
		delete(n.orphans, key)
		for _, sh := range o.shares {
			if n.epochMatches(t, p2p.TopicReveals, sh.epoch, peer.ID(sh.share.GetVerifier())) {
				n.noteShare(t, peer.ID(sh.share.GetVerifier()), sh.share, o.at)
			}
		}
		for _, c := range o.coms {
			n.acceptCommitment(t, c.from, c.com, c.comCID, c.comAt)
		}
	}
}

func (n *Node) onCommitment(from peer.ID, d decoded, at time.Time) {
	com := d.msg.(*pb.Commitment)
	key := string(com.GetChallengeCid())
	if t, ok := n.tracked[key]; ok {
		n.acceptCommitment(t, from, com, d.cid, at)
		return
	}
	o := n.orphan(key, at)
	if len(o.coms) < maxOrphanSenders && !slices.ContainsFunc(o.coms, func(c orphanCommitment) bool { return c.from == from }) {
		o.coms = append(o.coms, orphanCommitment{com: com, comCID: d.cid, comAt: at, from: from})
	}
}

func (n *Node) onOpening(from peer.ID, d decoded, at time.Time) {
	// Openings follow the reveal, which follows the commitment: one for a
	// challenge this node does not follow is not held (they are large).
	op := d.msg.(*pb.Opening)
	if t, ok := n.tracked[string(op.GetChallengeCid())]; ok && n.epochMatches(t, p2p.TopicOpenings, op.GetEpoch(), from) {
		n.acceptOpening(t, from, op)
	}
}

// epochMatches reports whether e, the epoch a message about t's challenge
// names, is the challenge's. The validator ignores one that is not when
// it accepted the challenge first; one that came before the challenge
// (or by a direct stream) is dropped here and counted.
func (n *Node) epochMatches(t *tracked, topic string, e uint64, from peer.ID) bool {
	if e == t.ch.GetEpoch() {
		return true
	}
	n.metrics.epochMismatch.WithLabelValues(topic).Inc()
	n.log.Info("message names another epoch than its challenge's", "topic", topic, "from", shortID(from), "epoch", e, "challenge_epoch", t.ch.GetEpoch(), "challenge", t.cid)
	return false
}

func (n *Node) orphan(key string, at time.Time) *orphan {
	o, ok := n.orphans[key]
	if !ok {
		if len(n.orphans) >= 4096 {
			return &orphan{} // full: drop it
		}
		o = &orphan{at: at}
		n.orphans[key] = o
	}
	return o
}

// acceptCommitment takes a signed commitment of t's target (the validator
// checked the signature), delivered by from: the target itself, or a peer
// forwarding it. The first one counts, timed on this node's clock; a second,
// different one is equivocation (onEquivocation). A verifier hands the first
// to the challenger directly, so a target that leaves the challenger out
// cannot keep the secret unrevealed and the challenge void.
func (n *Node) acceptCommitment(t *tracked, from peer.ID, com *pb.Commitment, comCID cid.Cid, at time.Time) {
	if peer.ID(com.GetProver()) != t.target {
		return // only the target's commitments count
	}
	if !n.epochMatches(t, p2p.TopicCommitments, com.GetEpoch(), from) {
		return
	}
	if t.com != nil {
		if !t.comCID.Equals(comCID) && t.equivocation == nil {
			t.equivocation = com
			n.onEquivocation(t, com)
		}
		return
	}
	if v := n.sharesComplete(t, com, at); v != "" {
		// It leaves out a share the target had time to get: sampled
		// without that verifier's secret, the target (with its challenger,
		// perhaps) may have known every one and ground its root. Not an
		// answer.
		n.metrics.ignored.Inc()
		n.log.Info("commitment ignored: it omits a verifier's share", "target", shortID(t.target), "verifier", shortID(v), "listed", len(com.GetShares()), "challenge", t.cid)
		return
	}
	t.com, t.comCID, t.comAt = com, comCID, at
	n.revealShare(t)
	if own, ok := n.secrets[t.cid.KeyString()]; ok && t.challenger == n.id {
		// The target has committed: reveal the opening secret, naming the
		// commitment it opens.
		delete(n.secrets, t.cid.KeyString())
		b, err := challenge.Marshal(com)
		if err != nil {
			n.log.Error("encode commitment", "err", err)
			return
		}
		t.revealedCom = comCID
		// The target gets it directly too, as it got the challenge.
		n.publishTo(p2p.TopicReveals, &pb.Reveal{ChallengeCid: t.cid.Bytes(), Challenger: []byte(n.id), Secret: own.secret, Commitment: b, Epoch: t.ch.GetEpoch()},
			deadlineOf(t.ch), t.target)
	} else if t.verifier && from != t.challenger && t.challenger != n.id {
		n.forwardCommitment(com, t.challenger)
	}
	n.tryVerify(t)
}

// MaxChallengerVoids is how many challenges a challenger may void by a
// missing or late reveal, in one node's view, before that node flags it
// (FlagVoids). Each void already contradicts the challenger like a wrong
// verdict; the flag makes a challenger that keeps doing it visible to
// operators. An honest challenger voids only when its reveal is lost or
// delayed past twice the deadline: none did in the devnet runs of
// docs/adversaries.md.
const MaxChallengerVoids = 3

// FlagVoids marks a peer that voided more than MaxChallengerVoids of the
// challenges it issued by not revealing its secret in time.
const FlagVoids = "voids: challenges voided by this challenger's missing reveal"

// noteVoid counts a void caused by challenger and flags it past
// MaxChallengerVoids.
func (n *Node) noteVoid(challenger peer.ID) {
	p, ok := n.peers[challenger]
	if !ok {
		return
	}
	p.voids++
	if p.voids > MaxChallengerVoids && !slices.Contains(p.flags, FlagVoids) {
		p.flags = append(slices.Clip(p.flags), FlagVoids)
		n.metrics.flagged.WithLabelValues("voids").Inc()
		n.log.Info("challenger flagged: it voids its challenges", "challenger", shortID(challenger), "voids", p.voids)
	}
}

// forwardCommitment hands a commitment to peer to directly. The challenger
// usually has it already (from the target, who sends it there too), and
// then refuses the copy as a replay.
func (n *Node) forwardCommitment(com *pb.Commitment, to peer.ID) {
	b, err := challenge.Marshal(com)
	if err != nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.sendDirect(p2p.TopicCommitments, b, to, 5*time.Second)
	}()
}

// onEquivocation handles a target's second signed commitment to one
// challenge, other than t.com: both carry the target's signature, so
// together they prove it committed to two roots — the move that lets a
// prover show the challenger one root and, once the secret is out, grind
// another for the verifiers. A verifier attests WRONG_ANSWER, whatever
// either opening shows (judgeEquivocation); a verifier also publishes the
// second commitment, so that every peer following the challenge (the
// reveal carries the first) sees both. Where it was gossiped already, the
// local validator refuses the copy as a replay, and nothing is sent.
func (n *Node) onEquivocation(t *tracked, second *pb.Commitment) {
	n.metrics.equivocations.Inc()
	n.log.Info("equivocation: the target signed two commitments to one challenge", "target", shortID(t.target), "challenge", t.cid)
	if !t.verifier {
		return
	}
	n.judgeEquivocation(t)
	if b, err := challenge.Marshal(second); err == nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			_ = n.host.Publish(n.ctx, n.topic(p2p.TopicCommitments), b) // a replay when gossiped already
		}()
	}
}

// judgeEquivocation attests WRONG_ANSWER for t, whose target equivocated,
// once the secret is out: like every correctness verdict, it carries this
// node's check digest (challenge.CheckDigests), computed off the loop.
func (n *Node) judgeEquivocation(t *tracked) {
	if t.equivocation == nil || !t.verifier || t.attested || t.verifying || t.secret == nil {
		return
	}
	t.verifying = true
	ch, chCID, secret := t.ch, t.cid, t.secret
	digestOf := append(n.possibleVerifiers(t), n.id)
	n.offLoop(func(ctx context.Context) {
		digests, err := challenge.CheckDigests(ctx, n.cpu, ch, chCID, secret, digestOf)
		n.post(func() {
			t.verifying = false
			if err == nil && t.digests == nil {
				t.digests = digests
			}
			if !t.attested {
				n.attest(t, pb.Verdict_VERDICT_WRONG_ANSWER, max(t.comAt.Sub(t.receivedAt), 0), 1, 0, "equivocation: two signed commitments to one challenge")
				n.learnTruth(t, pb.Verdict_VERDICT_WRONG_ANSWER)
			}
		})
	})
}

func (n *Node) acceptOpening(t *tracked, from peer.ID, op *pb.Opening) {
	if from != t.target || t.op != nil {
		return
	}
	t.op = op
	n.heldOpenings += openingBytes(op)
	if t.truthKnown || (!t.verifier && n.heldOpenings > maxHeldOpeningBytes) {
		n.slimOpening(t)
	}
	n.tryVerify(t)
	n.tryRecheck(t)
	n.tryAudit(t)
}

// tryVerify verifies and attests once both the commitment and the opening
// of a challenge this node verifies have arrived.
func (n *Node) tryVerify(t *tracked) {
	if t.equivocation != nil {
		n.judgeEquivocation(t)
		return
	}
	if v, ok := n.cliqueVerdict(t.target); ok && t.verifier && !t.attested && t.com != nil {
		// ADVERSARY: attests on the commitment alone, checking nothing.
		n.attest(t, v, max(t.comAt.Sub(t.receivedAt), 0), 0, 1, "unchecked")
		return
	}
	if !t.verifier || t.attested || t.verifying || t.com == nil || t.op == nil || t.slim || t.secret == nil || !t.comCID.Equals(t.revealedCom) {
		return
	}
	if _, ok := t.revealedShares(t.com); !ok {
		return
	}
	t.verifying = true
	n.verifyOffLoop(t, func(res challenge.Result, err error) { n.verified(t, res, err) })
}

// verifyOffLoop verifies t's opening off the loop — one verification at a
// time, bounded by verifyTimeout, so a costly opening never stalls the
// node's other work — and hands the result to done on the loop. t must
// hold its commitment, opening, secret and the shares its commitment
// lists.
func (n *Node) verifyOffLoop(t *tracked, done func(challenge.Result, error)) {
	ch, chCID, com, comCID, op, secret := t.ch, t.cid, t.com, t.comCID, t.op, t.secret
	shares, _ := t.revealedShares(com)
	// The check digests of this node and of every peer that may attest:
	// its own goes into its attestation, the others' judge theirs.
	digestOf := append(n.possibleVerifiers(t), n.id)
	n.offLoop(func(ctx context.Context) {
		start := time.Now()
		res, err := challenge.Verify(ctx, n.cpu, ch, chCID, com, comCID, op, secret, shares...)
		var digests map[peer.ID][]byte
		if err == nil {
			if digests, err = challenge.CheckDigests(ctx, n.cpu, ch, chCID, secret, digestOf); err != nil {
				err = fmt.Errorf("check digests: %w", err)
			}
		}
		n.metrics.verifyTime.Observe(time.Since(start).Seconds())
		n.post(func() {
			if err == nil && t.digests == nil {
				t.digests = digests
			}
			done(res, err)
		})
	})
}

// offLoop runs f on its own goroutine under the verification semaphore
// (verifications, re-checks and audits share it), with verifyTimeout, unless
// the node stops first.
func (n *Node) offLoop(f func(ctx context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select {
		case n.verifySem <- struct{}{}:
		case <-n.ctx.Done():
			return
		}
		defer func() { <-n.verifySem }()
		ctx, cancel := context.WithTimeout(n.ctx, verifyTimeout)
		defer cancel()
		f(ctx)
	}()
}

// openGrace is the time a target has to open once the secret is revealed
// before its missing opening counts against it.
const openGrace = time.Second

// verifyTimeout bounds one verification.
const verifyTimeout = time.Minute

// verified attests the outcome of a verification.
func (n *Node) verified(t *tracked, res challenge.Result, err error) {
	if t.attested {
		return
	}
	if err != nil {
		n.log.Warn("verification aborted", "challenge", t.cid, "err", err)
		t.verifying = false // finalize decides
		return
	}
	// A commitment can beat its challenge to this node (it is then held as
	// an orphan): the latency on this clock is then zero, never negative.
	// Time the target spent proving earlier challenges of its own is not
	// its latency (busyOverlap).
	latency := max(t.comAt.Sub(t.receivedAt), 0) - n.busyOverlap(t)
	deadline := time.Duration(t.ch.GetDeadlineMs()) * time.Millisecond
	verdict := res.Verdict
	if t.equivocation != nil {
		// A second root turned up while this one was being checked.
		res.Verdict, res.Reason = pb.Verdict_VERDICT_WRONG_ANSWER, "equivocation: two signed commitments to one challenge"
		verdict = res.Verdict
	}
	if verdict == pb.Verdict_VERDICT_PASS && latency > deadline {
		if n.withholdTiming(t, t.comAt) {
			n.learnTruth(t, res.Verdict)
			return
		}
		verdict = pb.Verdict_VERDICT_LATE
	}
	n.attest(t, verdict, latency, res.Deviation, res.Accuracy, res.Reason)
	n.learnTruth(t, res.Verdict)
}

// busyOverlap returns how much of t's latency, on this node's clock, its
// target spent finishing an earlier challenge of its own: a prover answers
// one challenge at a time, so when two challengers pick the same target at
// once (views of the live peers that differ, a retry meeting a fresh
// challenge) the second answer waits for the first, and that wait is not
// the device's slowness. Only an earlier challenge u that arrived here
// before t, whose commitment came before t's, in time, and was verified
// correct (excuses) may excuse waiting, and by no more than u's
// anticipated duration at the target's claimed rate: an unverified or
// wrong commitment, however cheap, excuses nothing (a prover posting junk
// to one challenge would otherwise have the next, or the retry it was
// late on, timed at near zero). Only challenges of the same target count,
// so a device shared by two identities gains nothing.
func (n *Node) busyOverlap(t *tracked) time.Duration {
	var excused time.Duration
	for _, u := range n.tracked {
		if u == t || u.target != t.target || u.com == nil || !u.receivedAt.Before(t.receivedAt) || !u.comAt.Before(t.comAt) {
			continue
		}
		if !n.excuses(u) {
			continue
		}
		wait := min(u.comAt.Sub(t.receivedAt), n.anticipated(u))
		excused = max(excused, wait)
	}
	return min(max(excused, 0), max(t.comAt.Sub(t.receivedAt), 0))
}

// excuses reports whether u's answer came in time and was verified
// correct: by this node (its verification or re-check), or else by the
// verifiers in good standing (application score ≥ 0) heard so far, at
// least one of them and none saying otherwise.
func (n *Node) excuses(u *tracked) bool {
	if !u.answeredInTime() || u.equivocation != nil {
		return false
	}
	if u.truthKnown {
		return u.truth == pb.Verdict_VERDICT_PASS
	}
	passes := 0
	for id, h := range u.atts {
		if n.appScore(id) < 0 {
			continue
		}
		if h.v != pb.Verdict_VERDICT_PASS {
			return false
		}
		passes++
	}
	return passes > 0
}

// claimOf returns p's latest claim known here (this node's own for
// itself), and whether there is one.
func (n *Node) claimOf(p peer.ID) (*pb.DeviceClaim, bool) {
	if p == n.id {
		return n.claim, true
	}
	e, ok := n.peers[p]
	if !ok {
		return nil, false
	}
	return e.claim, true
}

// anticipated returns how long t's workload takes at its target's claimed
// rate (challenge.Plan.Anticipated), 0 when it cannot be planned.
func (n *Node) anticipated(t *tracked) time.Duration {
	claim, ok := n.claimOf(t.target)
	if !ok {
		return 0
	}
	pl, err := n.planner.Plan(claim, t.ch.GetWorkload())
	if err != nil {
		return 0
	}
	return pl.Anticipated
}

// heardFrom reports whether target showed this node it was there after
// since: its claim was heard since, or it is connected to this node now.
// A router ignores every message of a peer it graylists, claims included,
// so without the connection a cheater pushed out of this node's view
// would look unreachable (no blame) for as long as it stays out, and its
// record would decay until it came back in; likewise a prover keeping
// quiet after a challenge it cannot answer (two identities on one device).
// A partitioned or restarting peer has no connection to this node.
func (n *Node) heardFrom(target peer.ID, since time.Time) bool {
	if p, ok := n.peers[target]; ok && p.seen.After(since) {
		return true
	}
	return n.host.Libp2p().Network().Connectedness(target) == network.Connected
}

// finalize attests NO_ANSWER for a challenge whose answer never came.
func (n *Node) finalize(t *tracked) {
	if t.attested || t.verifying {
		return // attested, or the answer came and is being checked
	}
	missing := t.missingShares(t.com)
	if t.com != nil && t.op == nil && t.answeredInTime() && (t.secret == nil || len(missing) > 0 || time.Since(t.lastRevealAt) < openGrace) {
		// The target committed in time (this node handed the commitment to
		// the challenger too) but the challenger revealed its secret, or a
		// verifier the commitment lists its share, late or never, so the
		// target could not open: the fault of whoever withheld, and each
		// is contradicted here as a judge who failed its duty. A
		// commitment after the deadline voids nothing: the target is late.
		n.log.Info("challenge void: a secret or share was not revealed in time", "challenge", t.cid, "challenger", shortID(t.challenger),
			"challenger_revealed", t.secret != nil, "shares_missing", len(missing))
		n.metrics.void.WithLabelValues("reveal").Inc()
		t.attested = true
		if t.secret == nil && t.challenger != n.id {
			n.recordCheck(t, t.challenger, false)
			n.noteVoid(t.challenger)
		}
		for _, v := range missing {
			if v != n.id {
				n.recordCheck(t, v, false)
			}
		}
		return
	}
	latency := time.Since(t.receivedAt)
	if t.com != nil {
		latency = max(t.comAt.Sub(t.receivedAt), 0)
	}
	if v, ok := n.cliqueVerdict(t.target); ok {
		n.attest(t, v, latency, 0, 1, "unchecked") // ADVERSARY
		return
	}
	if t.com != nil {
		// The commitment came; the opening was due by this finalize.
		if !n.withholdTiming(t, time.Now()) {
			n.attest(t, pb.Verdict_VERDICT_NO_ANSWER, latency, 1, 0, "no complete answer before the deadline")
		}
		return
	}
	// Nothing at all from the target: was it there? Wait for the next
	// epoch's claims. A target heard from after the challenge arrived (it
	// re-announces its claim every epoch) did not answer; one silent all
	// along was unreachable — a partition or a restart, not a cheat.
	if t.awaitingClaim {
		return
	}
	t.awaitingClaim = true
	e := n.clock.At(time.Now())
	n.after(time.Until(n.clock.Start(e+1).Add(n.clock.Length/ClaimSpread+2*time.Second)), func() {
		if t.attested {
			return
		}
		if n.heardFrom(t.target, t.receivedAt) {
			if !n.withholdTiming(t, t.receivedAt.Add(deadlineOf(t.ch))) {
				n.attest(t, pb.Verdict_VERDICT_NO_ANSWER, latency, 1, 0, "no answer from a reachable target")
			}
			return
		}
		n.attest(t, pb.Verdict_VERDICT_UNREACHABLE, latency, 0, 0, "target not heard from since the challenge")
	})
}

func (n *Node) attest(t *tracked, v pb.Verdict, latency time.Duration, deviation, accuracy float64, reason string) {
	t.attested = true
	a := &pb.Attestation{
		ChallengeCid: t.cid.Bytes(), Target: []byte(t.target), Verifier: []byte(n.id), Epoch: t.ch.GetEpoch(),
		Verdict: v, LatencyMs: uint32(min(latency.Milliseconds(), math.MaxUint32)), DeadlineMs: t.ch.GetDeadlineMs(),
		ScoreDeviation: deviation, DataAccuracy: accuracy, IssuedUnixMs: time.Now().UnixMilli(),
		ProverSmClockMhz: t.com.GetSmClockMhz(), ProverSmClockMaxMhz: t.com.GetSmClockMaxMhz(), ProverTemperatureC: t.com.GetTemperatureC(),
	}
	if _, known := correct(v); known {
		a.CheckDigest = t.digests[n.id] // nil when this node did not verify (an adversary) or the workload has none
	}
	n.metrics.attested.WithLabelValues(verdictName(v)).Inc()
	n.bump(func(s *Stats) { s.Attested++ })
	if v == pb.Verdict_VERDICT_PASS {
		n.checkProofSpeed(t, latency)
	}
	lvl := slog.LevelDebug
	if v != pb.Verdict_VERDICT_PASS {
		lvl = slog.LevelInfo
	}
	n.log.Log(n.ctx, lvl, "attestation", "target", shortID(t.target), "verdict", verdictName(v),
		"latency_ms", latency.Milliseconds(), "deadline_ms", t.ch.GetDeadlineMs(), "accuracy", accuracy, "reason", reason)
	n.publish(p2p.TopicAttestation, a)
}

// possibleVerifiers are the peers whose attestations of t count: its
// verifiers, and the next two of the ranking in this node's present view —
// views of the peer set can differ by a peer or two between nodes.
func (n *Node) possibleVerifiers(t *tracked) []peer.ID {
	wide := verifiersFor(t.ch.GetEpoch(), t.target, t.challenger, n.judges(n.livePeers(time.Now()), t.ch.GetEpoch()), n.cfg.Challenge.Verifiers+2)
	for _, v := range t.verifiers {
		if !slices.Contains(wide, v) {
			wide = append(wide, v)
		}
	}
	return wide
}

// attestationFor returns the followed challenge that attestation a from
// verifier from is about, or why it counts for none: unknown_challenge,
// mismatch (another target, epoch or deadline than the challenge's) or
// not_verifier (from is not among possibleVerifiers). Loop goroutine only.
func (n *Node) attestationFor(from peer.ID, a *pb.Attestation) (*tracked, string) {
	t, ok := n.tracked[string(a.GetChallengeCid())]
	switch {
	case !ok:
		return nil, "unknown_challenge"
	case peer.ID(a.GetTarget()) != t.target || a.GetEpoch() != t.ch.GetEpoch() || a.GetDeadlineMs() != t.ch.GetDeadlineMs():
		return nil, "mismatch"
	case !slices.Contains(n.possibleVerifiers(t), from):
		return nil, "not_verifier"
	}
	return t, ""
}

func (n *Node) onAttestation(from peer.ID, d decoded, at time.Time) {
	a := d.msg.(*pb.Attestation)
	t, reason := n.attestationFor(from, a)
	if t == nil {
		// The validator ignored it when it knew this already (useless);
		// the node's view may have changed since.
		n.log.Debug("attestation dropped", "from", shortID(from), "reason", reason)
		return
	}
	err := n.book.Record(scoring.Attestation{
		Challenge: t.cid.String(), Target: t.target.String(), Verifier: from.String(), Epoch: a.GetEpoch(),
		Verdict: verdictName(a.GetVerdict()), LatencyMS: float64(a.GetLatencyMs()), DeadlineMS: float64(a.GetDeadlineMs()),
		Deviation: a.GetScoreDeviation(), Accuracy: a.GetDataAccuracy(),
		ClockMHz: a.GetProverSmClockMhz(), MaxClockMHz: a.GetProverSmClockMaxMhz(), TemperatureC: a.GetProverTemperatureC(),
		RetryOf: retryOf(t.ch),
	})
	n.noteAttestation(t, from, heardVerdict{v: a.GetVerdict(), digest: a.GetCheckDigest()})
	n.noteOutcome(t, from, a.GetVerdict())
	switch {
	case err == nil:
		n.metrics.received.WithLabelValues(verdictName(a.GetVerdict())).Inc()
		n.metrics.latency.Observe(float64(a.GetLatencyMs()) / 1000)
		n.metrics.deviation.Observe(a.GetScoreDeviation())
		delay := at.Sub(time.UnixMilli(t.ch.GetIssuedUnixMs()))
		n.metrics.attDelay.Observe(delay.Seconds())
		n.delays.add(delay)
	case !errors.Is(err, scoring.ErrDuplicate):
		n.log.Error("record attestation", "err", err)
	}
}

// prover answers challenges addressed to this node, one at a time.
func (n *Node) prover() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case job := <-n.proveQ:
			n.answer(job)
		}
	}
}

func (n *Node) answer(job proveJob) {
	deadline := deadlineOf(job.ch)
	ctx, cancel := context.WithTimeout(n.ctx, n.proving.limit(deadline))
	defer cancel()
	start := time.Now()
	n.metrics.proveWait.Observe(start.Sub(job.at).Seconds())
	committed, err := n.proving.commit(ctx, job)
	n.metrics.proveTime.Observe(time.Since(start).Seconds())
	if err != nil {
		n.metrics.answered.WithLabelValues("failed").Inc()
		n.bump(func(s *Stats) { s.ProveFailed++ })
		if n.ctx.Err() == nil {
			n.log.Warn("proof not completed", "challenge", job.cid, "took", time.Since(start).Round(time.Millisecond), "err", err)
		}
		return
	}
	if committed == nil {
		return // the role answers nothing (an adversary)
	}
	n.metrics.answered.WithLabelValues("answered").Inc()
	n.bump(func(s *Stats) { s.Answered++ })
	n.log.Debug("challenge answered", "challenge", job.cid, "took", time.Since(start).Round(time.Millisecond), "deadline", deadline)
	// The opening waits for the challenger's secret (onReveal).
	n.post(func() {
		if t, ok := n.tracked[job.cid.KeyString()]; ok {
			t.committed = committed
			n.open(t)
		}
	})
}

// open publishes this node's opening of a challenge it proved, once its
// commitment, the challenger's secret and the shares it lists are there.
func (n *Node) open(t *tracked) {
	if t.committed == nil || t.secret == nil || t.opened {
		return
	}
	if _, ok := t.revealedShares(t.committed.Commitment); !ok {
		return
	}
	t.opened = true
	n.proving.open(t, t.committed)
	// The opening is out: its goroutine holds the proof until it is sent,
	// and nothing opens t again. A VRAM proof holds 32 bytes per lane,
	// hundreds of MB on a large device, which the 3 epochs t is followed
	// for kept alive.
	t.committed = nil
}

// maxHeldOpeningBytes bounds the rows of the openings a node holds for
// challenges it does not verify (for a re-check, should a verdict be
// disputed): past it, an opening's rows are dropped on arrival. Its own
// verifications' openings are always held, until verified.
const maxHeldOpeningBytes = 256 << 20

// openingBytes returns the memory op's rows take, about.
func openingBytes(op *pb.Opening) int {
	b := 0
	for _, r := range op.GetRows() {
		b += len(r.GetValues()) + 32*len(r.GetProof()) + 64
	}
	return b
}

// slimOpening drops the rows of t's opening once nothing needs them: the
// truth of t is known (this node verified or re-checked it), or the
// budget of held openings is spent. The opening's header stays, so t
// still counts as opened.
func (n *Node) slimOpening(t *tracked) {
	if t.op == nil || t.slim {
		return
	}
	n.heldOpenings -= openingBytes(t.op)
	t.op = &pb.Opening{ChallengeCid: t.op.GetChallengeCid(), CommitmentCid: t.op.GetCommitmentCid(), Prover: t.op.GetProver(), Epoch: t.op.GetEpoch()}
	t.slim = true
}

// onReveal takes a challenger's secret: this node opens its own proof
// with it, or verifies the target's opening. The reveal names the
// commitment it opens (the challenger's first from the target); a node that
// had none takes it, timed from now, and one that had another has found
// equivocation.
func (n *Node) onReveal(from peer.ID, d decoded, at time.Time) {
	r := d.msg.(*pb.Reveal)
	if r.GetShare() != nil {
		n.onShare(from, r, at)
		return
	}
	t, ok := n.tracked[string(r.GetChallengeCid())]
	if !ok || from != t.challenger || t.secret != nil || !n.epochMatches(t, p2p.TopicReveals, r.GetEpoch(), from) {
		return
	}
	if string(challenge.RevealHash(r.GetSecret())) != string(t.ch.GetRevealHash()) {
		n.log.Info("reveal does not match its challenge", "challenger", shortID(from), "challenge", t.cid)
		return
	}
	rc, err := challenge.RevealedCommitment(r)
	if err != nil || peer.ID(rc.Commitment.GetProver()) != t.target {
		n.log.Info("reveal names no commitment of its target", "challenger", shortID(from), "challenge", t.cid)
		return
	}
	t.secret, t.revealAt, t.revealedCom = r.GetSecret(), at, rc.CID
	n.afterReveal(t, from, rc, at)
}

// afterReveal carries on with t once a secret (the challenger's, or a
// verifier's share) was revealed at at with the commitment rc it opens:
// the commitment is taken (or found to be a second one), and the target
// opens, the verifiers verify, the others re-check or audit as their turn
// comes.
func (n *Node) afterReveal(t *tracked, from peer.ID, rc challenge.Revealed, at time.Time) {
	if at.After(t.lastRevealAt) {
		t.lastRevealAt = at
	}
	if t.target != n.id {
		n.acceptCommitment(t, from, rc.Commitment, rc.CID, at)
	}
	if t.target == n.id {
		n.open(t)
	}
	n.tryVerify(t)
	n.tryRecheck(t)
	n.tryAudit(t)
}

func (n *Node) bump(f func(*Stats)) {
	n.statsMu.Lock()
	f(&n.stats)
	n.statsMu.Unlock()
}

// Close stops the loops, waits for every goroutine, then closes the host
// and the score book, in reverse order of Start. It joins every error.
func (n *Node) Close() error {
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	n.wg.Wait()
	if n.releaseLag != nil {
		n.releaseLag()
	}
	err := errors.Join(n.host.Close(), n.book.Close())
	if n.closeBackend != nil {
		err = errors.Join(err, n.closeBackend())
	}
	n.log.Info("node stopped")
	return err
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
func (n *Node) Stats() Stats {
	n.statsMu.Lock()
	defer n.statsMu.Unlock()
	return n.stats
}

// ChallengeOutcome says what ChallengeNow did.
type ChallengeOutcome struct {
	// CID is the challenge this node issued, when it is the target's
	// scheduled challenger this epoch.
	CID string `json:"challenge_cid,omitempty"`
	// Requested is true when this node is not, and asked the scheduled
	// challengers over gossip instead.
	Requested   bool     `json:"requested,omitempty"`
	Challengers []string `json:"scheduled_challengers,omitempty"`
	Epoch       uint64   `json:"epoch"`
}

// ChallengeNow brings forward this epoch's challenge of target. If this
// node is the target's scheduled challenger (first in the rendezvous
// ranking) it issues the challenge at once; otherwise it gossips a
// ChallengeRequest that the scheduled challenger honours. Either way at most
// one challenge per challenger per target per epoch is acted on, so nobody
// can multiply a target's work this way.
func (n *Node) ChallengeNow(target peer.ID) (ChallengeOutcome, error) {
	var (
		out ChallengeOutcome
		err error
	)
	ok := n.snapshot(func() {
		now := time.Now()
		out.Epoch = n.clock.At(now)
		first := n.scheduledChallengers(target, out.Epoch, now)
		for _, c := range first {
			out.Challengers = append(out.Challengers, c.String())
		}
		switch {
		case target == n.id:
			err = errors.New("a node cannot challenge itself")
		case len(first) == 0:
			err = fmt.Errorf("no claim known for %s", target)
		case first[0] == n.id:
			var c cid.Cid
			if _, done := n.slots[fmt.Sprintf("%s/%d/%s", target, out.Epoch, n.id)]; done {
				err = fmt.Errorf("already challenged %s in epoch %d", target, out.Epoch)
				return
			}
			if c, err = n.issue(out.Epoch, target); err == nil {
				out.CID = c.String()
			}
		default:
			out.Requested = true
			n.publish(p2p.TopicRequests, &pb.ChallengeRequest{Target: []byte(target), Requester: []byte(n.id), IssuedUnixMs: now.UnixMilli()})
		}
	})
	if !ok {
		return out, errors.New("node is closing")
	}
	return out, err
}

// scheduledChallengers returns the top two of target's challenger ranking
// for epoch e in this node's view, or nil when target has no known claim.
func (n *Node) scheduledChallengers(target peer.ID, e uint64, now time.Time) []peer.ID {
	if _, ok := n.peers[target]; !ok && target != n.id {
		return nil
	}
	ranked := challengerRanking(e, target, n.judges(n.livePeers(now), e))
	return ranked[:min(2, len(ranked))]
}

// onRequest honours a request to challenge a target now, when this node is
// its scheduled challenger this epoch, has not challenged it yet, and the
// requester (never the target: the validator refuses that) is proven
// where any peer is, so that nobody can choose when its own device is
// tested, through a puppet identity either.
func (n *Node) onRequest(from peer.ID, d decoded, at time.Time) {
	r := d.msg.(*pb.ChallengeRequest)
	target := peer.ID(r.GetTarget())
	e := n.clock.At(at)
	first := n.scheduledChallengers(target, e, at)
	if target == n.id || len(first) == 0 || first[0] != n.id {
		return
	}
	if !n.proven(from, e) && len(n.judges(n.livePeers(at), e).proven) > 0 {
		// The validator refuses a target's request of itself; an identity
		// made for the purpose (the target's own puppet) would do as well,
		// so only a peer with a passed challenge on record may ask — once
		// any has one (at genesis nobody has).
		n.log.Debug("challenge request ignored: the requester has no passed challenge on record", "requester", shortID(from), "target", shortID(target))
		return
	}
	if _, done := n.slots[fmt.Sprintf("%s/%d/%s", target, e, n.id)]; done {
		return
	}
	if c, err := n.issue(e, target); err == nil {
		n.log.Info("challenge issued on request", "target", shortID(target), "requester", shortID(from), "challenge", c)
	}
}

// Claim returns this node's device claim.
func (n *Node) Claim() *pb.DeviceClaim { return proto.Clone(n.claim).(*pb.DeviceClaim) }

// ConnectedPeers returns the peers this node has a connection to.
func (n *Node) ConnectedPeers() []peer.ID { return n.host.ConnectedPeers() }

func verdictName(v pb.Verdict) string {
	switch v {
	case pb.Verdict_VERDICT_PASS:
		return scoring.VerdictPass
	case pb.Verdict_VERDICT_WRONG_ANSWER:
		return scoring.VerdictWrongAnswer
	case pb.Verdict_VERDICT_LATE:
		return scoring.VerdictLate
	case pb.Verdict_VERDICT_NO_ANSWER:
		return scoring.VerdictNoAnswer
	case pb.Verdict_VERDICT_BAD_PROOF:
		return scoring.VerdictBadProof
	case pb.Verdict_VERDICT_UNREACHABLE:
		return scoring.VerdictUnreachable
	}
	return "unknown"
}

// shortID returns the last 8 characters of a peer ID, as logs show it.
func shortID(id peer.ID) string {
	s := id.String()
	if len(s) > 8 {
		return s[len(s)-8:]
	}
	return s
}

// noteOutcome records in the target's peer entry the epoch of a failing
// or passing verdict from attester, when the attester is in good
// standing here (application score ≥ 0), for needsFollowUp. Unreachable
// verdicts say as much about the attester's links as about the target and
// are not noted. A failure also records its workload, which follow-ups
// repeat, and only a pass of that workload clears it.
func (n *Node) noteOutcome(t *tracked, attester peer.ID, v pb.Verdict) {
	p, ok := n.peers[t.target]
	if !ok || n.appScore(attester) < 0 {
		return
	}
	e := int64(min(t.ch.GetEpoch(), math.MaxInt64))
	switch v {
	case pb.Verdict_VERDICT_PASS:
		// A pass clears a failure of its own workload only: a memory
		// failure is not cleared by a passing product.
		if p.lastFailed < 0 || t.ch.GetWorkload() == p.failedWorkload {
			p.lastPassed = max(p.lastPassed, e)
		}
		n.notePass(t.target, t.ch.GetEpoch())
	case pb.Verdict_VERDICT_LATE, pb.Verdict_VERDICT_NO_ANSWER, pb.Verdict_VERDICT_WRONG_ANSWER, pb.Verdict_VERDICT_BAD_PROOF:
		if e >= p.lastFailed {
			p.failedWorkload = t.ch.GetWorkload()
		}
		p.lastFailed = max(p.lastFailed, e)
	}
}
