package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
)

// ErrStarted is Start's error on a node started before (running, failed
// or closed): a node's identity, store and host are opened once.
var ErrStarted = errors.New("node: Start called on a node already started")

// A node's lifecycle (Node.state): new, then started, then closed or,
// when Start fails, failed.
const (
	stateNew int32 = iota
	stateStarted
	stateFailed
	stateClosed
)

// Start opens the identity, the score book and the host, joins the topics
// and starts the scheduler, the prover and the epoch loop. On failure it
// closes whatever it had opened, in reverse order. A node starts once:
// a second Start, or one after Close, returns ErrStarted.
func (n *Node) Start(ctx context.Context) (err error) {
	if !n.state.CompareAndSwap(stateNew, stateStarted) {
		return ErrStarted
	}
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			n.state.Store(stateFailed) // Close has nothing left to close
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
	n.disk.log, n.claims.log, n.announce.log = n.log, n.log, n.log
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
	n.claims.self, n.earned.self = n.id, n.id
	claim, nvmlIndex, err := buildClaim(ctx, n.id, n.backend, n.cfg.Device, n.cfg.Challenge, n.o.measured,
		filepath.Join(n.dir, CalibrationFile), n.o.recalibrate, n.claiming, n.claims.cat, n.log)
	if err != nil {
		return err
	}
	n.claims.own, n.announce.claim, n.nvmlIndex = claim, claim, nvmlIndex
	sc := n.cfg.Scoring
	tp := scoring.DefaultTrustParams()
	tp.PreTrusted, tp.Decay, tp.Retention = sc.PreTrusted, sc.Decay, uint64(sc.RetentionEpochs)
	// On a wave schedule a device shared by identities misses in the
	// waves and passes its retries alone: retries forgive isolated misses
	// only.
	tp.RetriesForgiveIsolatedOnly = n.cfg.Challenge.Waves > 0
	if err := n.disk.check(); err != nil {
		return err
	}
	n.book, err = scoring.Open(ctx, filepath.Join(n.dir, ScoresDir), n.id.String(),
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
	if n.outputs, err = openOutputExport(n.cfg.Challenge.ExportOutputs); err != nil {
		return err
	}
	undo = append(undo, n.outputs.Close)
	if v, ok := n.book.Trust(); ok {
		n.app.set(v) // a restarted node carries on with its trust
	}
	n.earned.restore(n.book.Retained())
	pc := p2p.DefaultConfig()
	pc.AppScore = n.app.score
	pc.PeerGone = n.app.gone
	pc.ListenAddrs = n.cfg.P2P.Listen
	pc.Bootstrap = n.cfg.P2P.Bootstrap
	pc.MDNS = n.cfg.P2P.MDNS
	pc.ConnLow, pc.ConnHigh = n.cfg.P2P.ConnLow, n.cfg.P2P.ConnHigh
	pc.TraceFile, pc.TraceRemote = n.cfg.P2P.TraceFile, n.cfg.P2P.TraceRemote
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
	n.claims.peerstore = n.host.Libp2p().Peerstore
	n.announce.host = n.host
	n.ctx, n.cancel = context.WithCancel(context.Background())
	undo = append(undo, func() error { n.cancel(); return nil })
	n.ev.done = n.ctx.Done()
	n.gossip = gossip{host: n.host, self: n.id, shard: n.shard, shards: n.cfg.P2P.Shards, ctx: n.ctx, wg: &n.wg, log: n.log, direct: n.metrics.direct}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.disk.watch(n.ctx.Done(), n.cancel)
	}()
	for _, t := range []struct {
		topic  string
		decode func(peer.ID, []byte, time.Time) (proto.Message, cid.Cid, error)
		handle func(peer.ID, decoded, time.Time)
	}{
		{p2p.TopicClaims, wrap(n.validator.Claim), n.claims.onClaim},
		{p2p.TopicChallenges, wrap(n.validator.Challenge), n.tk.onChallenge},
		{p2p.TopicCommitments, wrap(n.validator.Commitment), n.tk.onCommitment},
		{p2p.TopicReveals, wrap(n.validator.Reveal), n.tk.onReveal},
		{p2p.TopicOpenings, wrap(n.validator.Opening), n.tk.onOpening},
		{p2p.TopicAttestation, wrap(n.validator.Attestation), n.tk.onAttestation},
		{p2p.TopicRequests, wrap(n.validator.ChallengeRequest), n.tk.onRequest},
	} {
		handle := conductOf(n.role).handler(t.topic, t.handle)
		if err := n.host.Join(n.gossip.topic(t.topic), n.validatorFor(t.topic, t.decode), func(m p2p.Message) {
			at := time.Now() // receipt time on this node's clock
			d, ok := m.Decoded.(decoded)
			if !ok {
				return
			}
			n.ev.post(func() { handle(m.From, d, at) })
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
		if err := n.host.AcceptDirect(n.gossip.topic(t)); err != nil {
			return err
		}
	}
	n.tk.validateClaim = n.validatorFor(p2p.TopicClaims, wrap(n.validator.Claim))
	n.host.ServeClaim(n.announce.encoded)
	if n.cfg.P2P.ShareTopology {
		live := func() (ids []peer.ID) {
			n.ev.snapshot(func() { ids = n.claims.livePeers(time.Now()) })
			return ids
		}
		n.views = newViewShare(n.host, func() uint64 { return n.clock.At(time.Now()) }, live)
		n.host.ServeTopology(n.views.answer)
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.views.run(n.ctx) }()
	}
	processLag.acquire()
	n.releaseLag = sync.OnceFunc(processLag.release)
	n.wg.Add(2)
	go n.loop()
	go n.tk.prover()
	n.log.Info("node started", "addrs", n.host.Addrs(), "role", n.role, "claim_model", claim.GetModel(),
		"claim_int8_tops", claim.GetInt8Tops(), "claim_bf16_tflops", claim.GetBf16Tflops(), "claim_hash_ghps", claim.GetHashGhps(),
		"claim_vram_bytes", claim.GetVramBytes(), "epoch", n.clock.At(time.Now()))
	return nil
}

// Close stops the loops, waits for every goroutine, then closes the host
// and the score book, in reverse order of Start. It joins every error.
// Closing a node that never started, failed to start or is closed
// already does nothing.
func (n *Node) Close() error {
	if !n.state.CompareAndSwap(stateStarted, stateClosed) {
		return nil // never started, failed to start, or closed already
	}
	n.cancel()
	n.wg.Wait()
	if n.releaseLag != nil {
		n.releaseLag()
	}
	err := errors.Join(n.host.Close(), n.book.Close(), n.outputs.Close())
	if n.closeBackend != nil {
		err = errors.Join(err, n.closeBackend())
	}
	n.log.Info("node stopped")
	return err
}
