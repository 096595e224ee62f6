package node

import (
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/gpu"
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
	recalibrate    bool
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
// its identity key instead of building one from [p2p] listen: poai-sim
// passes mocknet peers. The node closes the host.
func WithHost(newHost func(crypto.PrivKey) (host.Host, error)) Option {
	return func(o *options) { o.newHost = newHost }
}

// WithHeartbeat replaces gossipsub's 1 s heartbeat (p2p.Config's
// HeartbeatInterval), for many nodes in one process (poai-sim).
func WithHeartbeat(d time.Duration) Option { return func(o *options) { o.heartbeat = d } }

// WithScoreInspect sets how often gossipsub's peer scores are copied for
// the API (p2p.Config's ScoreInspectInterval, default 1 s), for many
// nodes in one process (poai-sim).
func WithScoreInspect(d time.Duration) Option { return func(o *options) { o.inspect = d } }

// WithCompactStore opens the score store with scoring.Params.Compact, for
// many nodes in one process (poai-sim).
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

// WithOwnedBackend hands the node the release of its backend: Close (or a
// failed Start) calls release.
func WithOwnedBackend(release func() error) Option {
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

// WithRecalibrate makes the node measure its device at start even when
// its data directory holds a calibration of it (CalibrationFile), and
// record the new one; the log shows both.
func WithRecalibrate() Option { return func(o *options) { o.recalibrate = true } }

// WithWarmup sets how long Start waits for the gossip mesh to form before
// the first claim is published (default 1.5 s: one gossipsub heartbeat plus
// margin).
func WithWarmup(d time.Duration) Option { return func(o *options) { o.warmup = d } }
