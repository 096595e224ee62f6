package challenge

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// Limits bound what a validator accepts from the network.
type Limits struct {
	// MaxBytes is the largest encoded message per kind, in bytes.
	MaxClaim, MaxChallenge, MaxCommitment, MaxReveal, MaxOpening, MaxAttestation int
	// MaxN, MaxK, MaxM bound a challenge's product shape.
	MaxN, MaxK, MaxM int
	// MaxOpenings bounds the rows a challenge may ask to open.
	MaxOpenings int
	// MaxDeadline bounds a challenge's deadline.
	MaxDeadline time.Duration
	// MaxSkew is how far a timestamp may lie from the receiver's clock.
	MaxSkew time.Duration
	// MaxEpochLag is how many epochs a challenge or attestation may trail
	// or lead the receiver's current epoch.
	MaxEpochLag uint64
	// MaxVerifyWork bounds what verifying one GEMM challenge may cost, in
	// multiply-adds; MaxVerifyHashes one VRAM challenge, in SHA-256
	// evaluations (about 1 s and 5 s of one CPU core).
	MaxVerifyWork, MaxVerifyHashes float64
	// MaxProverBytes bounds the memory a challenge may ask a prover for.
	// It only stops absurd requests; a node proves only challenges planned
	// from its own claim.
	MaxProverBytes float64
	// MaxLanes bounds the lanes of a VRAM challenge.
	MaxLanes int
}

// MaxMultiLeaves bounds the leaves an llm opening opens, and the hashes
// of its multi-proof: 2^16 (the opening's bytes are bounded by
// MaxOpening besides).
const MaxMultiLeaves = 1 << 16

// DefaultLimits returns limits that admit every workload poai sizes today.
func DefaultLimits() Limits {
	return Limits{
		MaxClaim:        4 << 10,
		MaxChallenge:    4 << 10,
		MaxCommitment:   4 << 10, // MaxShares signed shares fit
		MaxReveal:       5 << 10, // a commitment, a share and a secret
		MaxOpening:      8 << 20,
		MaxAttestation:  2 << 10,
		MaxN:            1 << 22,
		MaxK:            gpu.MaxK,
		MaxM:            1 << 14,
		MaxOpenings:     1024,
		MaxDeadline:     10 * time.Minute,
		MaxSkew:         2 * time.Minute,
		MaxEpochLag:     2,
		MaxVerifyWork:   1 << 30,
		MaxVerifyHashes: 1 << 24,
		MaxProverBytes:  1 << 40,
		MaxLanes:        MaxLanes,
	}
}

// Validator decodes and checks messages from the network. Checks are
// stateless except for a bounded replay cache of accepted content IDs.
// It is safe for concurrent use.
type Validator struct {
	limits  Limits
	clock   EpochClock
	replay  *ReplayCache
	catalog *gpu.DeviceCatalog
	// epochs holds the epoch of each accepted challenge, so that a
	// commitment, opening, reveal or attestation naming another epoch for
	// it is rejected.
	epochs *epochCache
}

// ValidatorOption configures a Validator.
type ValidatorOption func(*Validator)

// WithCatalog makes the validator judge claim model names against c (a
// devnet's gpu.DevnetCatalog) instead of gpu.DefaultCatalog: the catalog
// its node's Planner plans from.
func WithCatalog(c *gpu.DeviceCatalog) ValidatorOption {
	return func(v *Validator) {
		if c != nil {
			v.catalog = c
		}
	}
}

// NewValidator returns a validator with the given limits and epoch clock.
// The replay cache remembers each accepted CID for 2·MaxSkew, after which
// the timestamp check ignores it as stale, or for the span of the epoch
// window (EpochWindow) where that is longer, after which the epoch check
// ignores it; it holds at most capacity IDs.
func NewValidator(limits Limits, clock EpochClock, capacity int, opts ...ValidatorOption) *Validator {
	v := &Validator{limits: limits, clock: clock, catalog: gpu.DefaultCatalog, epochs: newEpochCache(capacity)}
	lag, lead := v.windowLag()
	ttl := max(2*limits.MaxSkew, time.Duration(lag+lead+1)*clock.Length)
	v.replay = NewReplayCache(capacity, ttl)
	for _, o := range opts {
		o(v)
	}
	return v
}

// ReplayTTL returns how long the replay cache remembers an accepted
// content ID: past it, a copy is stale or out of its epoch window.
func (v *Validator) ReplayTTL() time.Duration { return v.replay.ttl }

// FollowEpochs is how many epochs, besides twice its deadline, a node
// follows a challenge after receiving it (node's expire): no commitment,
// reveal or opening of it matters after that.
const FollowEpochs = 3

// epochsOf returns d in epochs, rounded up (0 without an epoch length).
func (v *Validator) epochsOf(d time.Duration) uint64 {
	l := v.clock.Length
	if l <= 0 || d <= 0 {
		return 0
	}
	return uint64((d + l - 1) / l)
}

// windowLag returns how many epochs a message about a challenge may trail
// (lag) or lead (lead) the receiver's current epoch. A challenge is
// accepted up to MaxEpochLag epochs after its own; its commitment,
// reveals and opening follow within twice its deadline (a reveal later
// than that voids the challenge), and a node follows it for FollowEpochs
// more. The deadline is not known without the challenge, so MaxDeadline
// stands for it. The lead is the challenge's: clocks that run ahead.
func (v *Validator) windowLag() (lag, lead uint64) {
	return v.limits.MaxEpochLag + FollowEpochs + v.epochsOf(2*v.limits.MaxDeadline), v.limits.MaxEpochLag
}

// EpochWindow returns the epochs [lo, hi] whose commitments, openings and
// reveals the validator accepts at now: from MaxEpochLag + FollowEpochs +
// ceil(2·MaxDeadline / epoch length) epochs before the current epoch to
// MaxEpochLag after it (windowLag). With the default limits and 30 s
// epochs that is [current − 45, current + 2].
func (v *Validator) EpochWindow(now time.Time) (lo, hi uint64) {
	cur := v.clock.At(now)
	lag, lead := v.windowLag()
	if cur > lag {
		lo = cur - lag
	}
	return lo, cur + lead
}

// aboutChallenge checks the epoch e of a message about challenge chCID
// (a commitment, an opening, a reveal): a challenge this validator
// accepted with another epoch makes it ErrEpochMismatch, ignored; an epoch
// outside EpochWindow makes it ErrOutOfEpoch, ignored.
func (v *Validator) aboutChallenge(what string, chCID []byte, e uint64, now time.Time) error {
	if want, ok := v.epochs.get(string(chCID)); ok && want != e {
		return fmt.Errorf("%w: %s of epoch %d, its challenge's is %d", ErrEpochMismatch, what, e, want)
	}
	if lo, hi := v.EpochWindow(now); e < lo || e > hi {
		return fmt.Errorf("%w: %s of epoch %d, window [%d, %d]", ErrOutOfEpoch, what, e, lo, hi)
	}
	return nil
}

// decode runs the checks common to every kind: size, canonical decoding,
// replay. It returns the message's CID.
func (v *Validator) decode(data []byte, maxBytes int, m proto.Message, now time.Time) (cid.Cid, error) {
	if len(data) > maxBytes {
		return cid.Undef, fmt.Errorf("%w: %d bytes > %d", ErrOversized, len(data), maxBytes)
	}
	if err := unmarshalCanonical(data, m); err != nil {
		return cid.Undef, err
	}
	c := CIDOf(data)
	if v.replay.Seen(c.KeyString(), now) {
		return cid.Undef, fmt.Errorf("%w: %s", ErrReplayed, c)
	}
	return c, nil
}

func (v *Validator) fresh(issuedMs int64, now time.Time) error {
	at := time.UnixMilli(issuedMs)
	if d := now.Sub(at); d > v.limits.MaxSkew || d < -v.limits.MaxSkew {
		return fmt.Errorf("%w: issued %s from now", ErrStale, d.Round(time.Millisecond))
	}
	return nil
}

// epochWithin is epochOK with extra lag for a deadline d (at most
// MaxDeadline) past the epoch.
func (v *Validator) epochWithin(e uint64, now time.Time, d time.Duration) error {
	extra := uint64(0)
	if l := v.clock.Length; l > 0 {
		extra = uint64((min(d, v.limits.MaxDeadline) + l - 1) / l)
	}
	cur := v.clock.At(now)
	if e+v.limits.MaxEpochLag+extra < cur || e > cur+v.limits.MaxEpochLag {
		return fmt.Errorf("%w: epoch %d, current %d", ErrOutOfEpoch, e, cur)
	}
	return nil
}

func (v *Validator) epochOK(e uint64, now time.Time) error {
	cur := v.clock.At(now)
	if e+v.limits.MaxEpochLag < cur || e > cur+v.limits.MaxEpochLag {
		return fmt.Errorf("%w: epoch %d, current %d", ErrOutOfEpoch, e, cur)
	}
	return nil
}

// author checks that b is a valid peer ID equal to the gossipsub signer.
func author(field string, b []byte, from peer.ID) error {
	id, err := peer.IDFromBytes(b)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	if id != from {
		return fmt.Errorf("%w: %s is %s, signed by %s", ErrSigner, field, id, from)
	}
	return nil
}

func finite(name string, x float64, lo, hi float64) error {
	if math.IsNaN(x) || x < lo || x > hi {
		return fmt.Errorf("%w: %s=%v outside [%v,%v]", ErrMalformed, name, x, lo, hi)
	}
	return nil
}

// accept records c as seen; call it only when every check passed. It
// returns ErrReplayed when a concurrent validation of the same message
// accepted it first (gossipsub validates messages in parallel), so one
// content ID is accepted once.
func (v *Validator) accept(c cid.Cid, now time.Time) error {
	if !v.replay.AddIfAbsent(c.KeyString(), now) {
		return fmt.Errorf("%w: %s", ErrReplayed, c)
	}
	return nil
}

// Forget undoes the acceptance of content ID c, so the next copy of the
// message validates as fresh. For a copy that reached this node outside
// gossip (p2p.DirectProtocol): gossipsub forwards only the copies its
// validator accepts, so the gossip copy that follows must not be dropped
// as a replay — the handlers drop the duplicate instead.
func (v *Validator) Forget(c cid.Cid) { v.replay.Forget(c.KeyString()) }

// MaxClaimAddrs bounds DeviceClaim.addrs.
const MaxClaimAddrs = 16

// Bounds on a claim's figures. A figure above its bound is no device's
// (each is about 50 times the fastest device in gpu.Catalog, and a node
// proves one device); one at its bound is accepted and then flagged, as
// no workload can be planned for it (Planner.Check). int8_tops and
// hash_ghps must be positive: every claim is challenged on int8, and the
// VRAM deadline of a model outside the catalog follows its hash rate.
// bf16_tflops may be 0 (a backend without a bf16 path: it gets no bf16
// challenge), as may mem_bandwidth_gbps, which nothing is sized from.
const (
	MaxClaimInt8TOPS      = 1e5 // 50 × the H200's 1,979 TOPS
	MaxClaimBF16TFLOPS    = 5e4 // 50 × the H200's 989.5 TFLOPS
	MaxClaimHashGHps      = 700 // 50 × the H200's measured 13.3 GH/s
	MaxClaimBandwidthGBps = 3e5 // 60 × the H200's 4,800 GB/s
)

// Claim validates a device claim signed by from.
func (v *Validator) Claim(from peer.ID, data []byte, now time.Time) (*pb.DeviceClaim, cid.Cid, error) {
	m := &pb.DeviceClaim{}
	c, err := v.decode(data, v.limits.MaxClaim, m, now)
	if err != nil {
		return nil, cid.Undef, err
	}
	if err := author("peer_id", m.GetPeerId(), from); err != nil {
		return nil, cid.Undef, err
	}
	if err := v.fresh(m.GetIssuedUnixMs(), now); err != nil {
		return nil, cid.Undef, err
	}
	if m.GetModel() == "" || len(m.GetModel()) > 128 || len(m.GetBackend()) > 32 {
		return nil, cid.Undef, fmt.Errorf("%w: model or backend name missing or too long", ErrMalformed)
	}
	if _, _, err := v.catalog.Resolve(m.GetModel()); err != nil {
		return nil, cid.Undef, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for _, f := range []struct {
		n        string
		x        float64
		positive bool
		hi       float64
	}{
		{"int8_tops", m.GetInt8Tops(), true, MaxClaimInt8TOPS},
		{"bf16_tflops", m.GetBf16Tflops(), false, MaxClaimBF16TFLOPS},
		{"mem_bandwidth_gbps", m.GetMemBandwidthGbps(), false, MaxClaimBandwidthGBps},
		{"hash_ghps", m.GetHashGhps(), true, MaxClaimHashGHps},
		{"llm_int8_tops", m.GetLlmInt8Tops(), false, MaxClaimInt8TOPS},
	} {
		if err := finite(f.n, f.x, 0, f.hi); err != nil {
			return nil, cid.Undef, err
		}
		if f.positive && f.x <= 0 {
			return nil, cid.Undef, fmt.Errorf("%w: %s must be positive", ErrMalformed, f.n)
		}
	}
	if len(m.GetAddrs()) > MaxClaimAddrs {
		return nil, cid.Undef, fmt.Errorf("%w: %d addrs, over %d", ErrMalformed, len(m.GetAddrs()), MaxClaimAddrs)
	}
	for i, a := range m.GetAddrs() {
		if _, err := multiaddr.NewMultiaddrBytes(a); err != nil || len(a) > 256 {
			return nil, cid.Undef, fmt.Errorf("%w: addrs[%d] is not a multiaddr of at most 256 bytes", ErrMalformed, i)
		}
	}
	if err := v.accept(c, now); err != nil {
		return nil, cid.Undef, err
	}
	return m, c, nil
}

// Challenge validates a challenge signed by from.
func (v *Validator) Challenge(from peer.ID, data []byte, now time.Time) (*pb.Challenge, cid.Cid, error) {
	m := &pb.Challenge{}
	c, err := v.decode(data, v.limits.MaxChallenge, m, now)
	if err != nil {
		return nil, cid.Undef, err
	}
	if err := author("challenger", m.GetChallenger(), from); err != nil {
		return nil, cid.Undef, err
	}
	target, err := peer.IDFromBytes(m.GetTarget())
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("%w: target: %v", ErrMalformed, err)
	}
	switch {
	case m.GetVersion() != 1:
		return nil, cid.Undef, fmt.Errorf("%w: version %d", ErrMalformed, m.GetVersion())
	case target == from:
		return nil, cid.Undef, fmt.Errorf("%w: challenger targets itself", ErrMalformed)
	case len(m.GetNonce()) != 32:
		return nil, cid.Undef, fmt.Errorf("%w: nonce has %d bytes, want 32", ErrMalformed, len(m.GetNonce()))
	case len(m.GetRevealHash()) != 32:
		return nil, cid.Undef, fmt.Errorf("%w: reveal_hash has %d bytes, want 32", ErrMalformed, len(m.GetRevealHash()))
	case v.limits.checkDeadline(m) != nil:
		return nil, cid.Undef, v.limits.checkDeadline(m)
	case m.GetOpenings() == 0 || int(m.GetOpenings()) > v.limits.MaxOpenings:
		return nil, cid.Undef, fmt.Errorf("%w: %d openings", ErrMalformed, m.GetOpenings())
	}
	if err := v.workload(m); err != nil {
		return nil, cid.Undef, err
	}
	if len(m.GetClaimCid()) > 0 {
		if _, err := parseCID("claim_cid", m.GetClaimCid()); err != nil {
			return nil, cid.Undef, err
		}
	}
	if len(m.GetRetryOf()) > 0 {
		if _, err := parseCID("retry_of", m.GetRetryOf()); err != nil {
			return nil, cid.Undef, err
		}
	}
	if err := v.fresh(m.GetIssuedUnixMs(), now); err != nil {
		return nil, cid.Undef, err
	}
	if err := v.epochOK(m.GetEpoch(), now); err != nil {
		return nil, cid.Undef, err
	}
	if err := v.accept(c, now); err != nil {
		return nil, cid.Undef, err
	}
	v.epochs.put(string(c.Bytes()), m.GetEpoch())
	return m, c, nil
}

// workload checks a challenge's workload parameters: within limits, and
// cheap enough to verify that a challenge cannot be used to exhaust the
// verifiers.
// An llm challenge must name its epoch's weight seed (LLMWeightSeed).
func (v *Validator) workload(m *pb.Challenge) error {
	if err := v.limits.checkWorkload(m); err != nil {
		return err
	}
	if m.GetWorkload() == pb.Workload_WORKLOAD_LLM {
		want := LLMWeightSeed(v.clock.Genesis.Unix(), m.GetEpoch())
		if string(m.GetLlm().GetWeightSeed()) != string(want[:]) {
			return fmt.Errorf("%w: weight seed is not epoch %d's", ErrMalformed, m.GetEpoch())
		}
	}
	return nil
}

// checkDeadline reports a challenge deadline the validators reject: zero
// or over MaxDeadline.
func (l Limits) checkDeadline(m *pb.Challenge) error {
	if m.GetDeadlineMs() == 0 || time.Duration(m.GetDeadlineMs())*time.Millisecond > l.MaxDeadline {
		return fmt.Errorf("%w: deadline %d ms", ErrMalformed, m.GetDeadlineMs())
	}
	return nil
}

// checkWorkload is Validator.workload under limits l; Planner.Plan runs
// it on every plan.
func (l Limits) checkWorkload(m *pb.Challenge) error {
	switch m.GetWorkload() {
	case pb.Workload_WORKLOAD_GEMM_INT8, pb.Workload_WORKLOAD_GEMM_BF16:
		s := ShapeOf(m)
		switch {
		case s.ValidateStreamed() != nil:
			return fmt.Errorf("%w: %v", ErrMalformed, s.ValidateStreamed())
		case s.N > l.MaxN || s.K > l.MaxK || s.M > l.MaxM:
			return fmt.Errorf("%w: shape %dx%dx%d over limits", ErrMalformed, s.N, s.K, s.M)
		case m.GetWorkload() == pb.Workload_WORKLOAD_GEMM_BF16 && s.K > MaxBF16K:
			return fmt.Errorf("%w: bf16 k=%d over %d", ErrMalformed, s.K, MaxBF16K)
		case int(m.GetOpenings()) > s.N:
			return fmt.Errorf("%w: %d openings of %d rows", ErrMalformed, m.GetOpenings(), s.N)
		case int64(m.GetOpenings())*int64(s.M)*4 > int64(l.MaxOpening)/2:
			return fmt.Errorf("%w: opening would exceed the size limit", ErrMalformed)
		case VerifierMACs(m.GetWorkload(), s, int(m.GetOpenings())) > l.MaxVerifyWork:
			return fmt.Errorf("%w: verification would cost %.3g multiply-adds", ErrMalformed, VerifierMACs(m.GetWorkload(), s, int(m.GetOpenings())))
		case proverBytes(s) > l.MaxProverBytes:
			return fmt.Errorf("%w: product needs %.3g bytes", ErrMalformed, proverBytes(s))
		}
	case pb.Workload_WORKLOAD_LLM:
		cfg, err := LLMConfigOf(m)
		if err != nil {
			return err
		}
		macs, bytes := llmChecksBound(cfg, int(m.GetOpenings()), int(m.GetLlm().GetLinks()))
		switch {
		case macs > l.MaxVerifyWork:
			return fmt.Errorf("%w: verification could cost %.3g multiply-adds", ErrMalformed, macs)
		case bytes > float64(l.MaxOpening)/2:
			return fmt.Errorf("%w: opening could take %.3g bytes", ErrMalformed, bytes)
		}
	case pb.Workload_WORKLOAD_VRAM:
		p := VRAMParamsOf(m)
		verify := float64(m.GetOpenings()) * float64(p.Reads) * float64(p.Rounds+1)
		switch {
		case p.Validate() != nil:
			return fmt.Errorf("%w: %v", ErrMalformed, p.Validate())
		case int(m.GetOpenings()) > p.Lanes:
			return fmt.Errorf("%w: %d openings of %d lanes", ErrMalformed, m.GetOpenings(), p.Lanes)
		case verify > l.MaxVerifyHashes:
			return fmt.Errorf("%w: verification would cost %.3g hashes", ErrMalformed, verify)
		case p.Lanes > l.MaxLanes:
			return fmt.Errorf("%w: %d lanes", ErrMalformed, p.Lanes)
		case float64(p.Bytes()) > l.MaxProverBytes:
			return fmt.Errorf("%w: %d bytes of memory", ErrMalformed, p.Bytes())
		}
	default:
		return fmt.Errorf("%w: workload %v", ErrMalformed, m.GetWorkload())
	}
	return nil
}

// proverBytes is the memory of A, B and C of a product, in bytes.
func proverBytes(s gpu.Shape) float64 {
	n, k, m := float64(s.N), float64(s.K), float64(s.M)
	// A streamed prover (gpu.Streamer) holds B, its leaves and the tree;
	// A and C pass through in chunks.
	return k*m + 2*32*n
}

// Commitment validates a commitment, signed by its prover (the
// signature field) and delivered by from, the prover or a peer forwarding
// it.
func (v *Validator) Commitment(from peer.ID, data []byte, now time.Time) (*pb.Commitment, cid.Cid, error) {
	m := &pb.Commitment{}
	c, err := v.decode(data, v.limits.MaxCommitment, m, now)
	if err != nil {
		return nil, cid.Undef, err
	}
	if err := commitmentOK(m); err != nil {
		return nil, cid.Undef, err
	}
	if err := v.aboutChallenge("commitment", m.GetChallengeCid(), m.GetEpoch(), now); err != nil {
		return nil, cid.Undef, err
	}
	if err := v.accept(c, now); err != nil {
		return nil, cid.Undef, err
	}
	return m, c, nil
}

// commitmentOK checks a decoded commitment's fields and its signature. The
// signature, not the gossipsub author, says who committed, so a peer may
// forward another's commitment (verifiers hand the challenger a
// commitment the target sent them alone).
func commitmentOK(m *pb.Commitment) error {
	if _, err := parseCID("challenge_cid", m.GetChallengeCid()); err != nil {
		return err
	}
	if len(m.GetMerkleRoot()) != 32 || m.GetLeaves() == 0 {
		return fmt.Errorf("%w: root of %d bytes over %d leaves", ErrMalformed, len(m.GetMerkleRoot()), m.GetLeaves())
	}
	if len(m.GetTokens()) > MaxLLMDecode {
		return fmt.Errorf("%w: %d tokens", ErrMalformed, len(m.GetTokens()))
	}
	if m.GetSmClockMhz() > 10000 || m.GetSmClockMaxMhz() > 10000 || m.GetTemperatureC() > 200 {
		return fmt.Errorf("%w: device state %d/%d MHz, %d °C", ErrMalformed, m.GetSmClockMhz(), m.GetSmClockMaxMhz(), m.GetTemperatureC())
	}
	if err := CheckCommitmentSignature(m); err != nil {
		return err
	}
	return sharesOK(m)
}

// Opening validates an opening signed by from. Whether its rows are the
// right ones is Verify's business: that needs the challenge.
func (v *Validator) Opening(from peer.ID, data []byte, now time.Time) (*pb.Opening, cid.Cid, error) {
	m := &pb.Opening{}
	c, err := v.decode(data, v.limits.MaxOpening, m, now)
	if err != nil {
		return nil, cid.Undef, err
	}
	if err := author("prover", m.GetProver(), from); err != nil {
		return nil, cid.Undef, err
	}
	if _, err := parseCID("challenge_cid", m.GetChallengeCid()); err != nil {
		return nil, cid.Undef, err
	}
	if _, err := parseCID("commitment_cid", m.GetCommitmentCid()); err != nil {
		return nil, cid.Undef, err
	}
	maxRows := v.limits.MaxOpenings
	if len(m.GetMultiProof()) > 0 {
		maxRows = MaxMultiLeaves // an llm opening: leaves, one multi-proof
	}
	if n := len(m.GetRows()); n == 0 || n > maxRows {
		return nil, cid.Undef, fmt.Errorf("%w: %d rows opened", ErrMalformed, n)
	}
	for _, r := range m.GetRows() {
		if len(r.GetProof()) > 64 || (len(m.GetMultiProof()) > 0 && len(r.GetProof()) > 0) {
			return nil, cid.Undef, fmt.Errorf("%w: proof of %d hashes", ErrMalformed, len(r.GetProof()))
		}
	}
	if len(m.GetMultiProof()) > MaxMultiLeaves {
		return nil, cid.Undef, fmt.Errorf("%w: multi-proof of %d hashes", ErrMalformed, len(m.GetMultiProof()))
	}
	for _, h := range m.GetMultiProof() {
		if len(h) != 32 {
			return nil, cid.Undef, fmt.Errorf("%w: multi-proof hash of %d bytes", ErrMalformed, len(h))
		}
	}
	if err := v.aboutChallenge("opening", m.GetChallengeCid(), m.GetEpoch(), now); err != nil {
		return nil, cid.Undef, err
	}
	if err := v.accept(c, now); err != nil {
		return nil, cid.Undef, err
	}
	return m, c, nil
}

// Reveal validates a reveal signed by from: a challenger's, with the
// signed commitment it names (RevealedCommitment), or a verifier's share
// (share set): its signed share commitment alone, or its share with a
// signed commitment of the target that lists it. Whether the secret
// matches the challenge, and the commitment's prover is its target, is
// the node's check: that needs the challenge.
func (v *Validator) Reveal(from peer.ID, data []byte, now time.Time) (*pb.Reveal, cid.Cid, error) {
	m := &pb.Reveal{}
	c, err := v.decode(data, v.limits.MaxReveal, m, now)
	if err != nil {
		return nil, cid.Undef, err
	}
	if _, err := parseCID("challenge_cid", m.GetChallengeCid()); err != nil {
		return nil, cid.Undef, err
	}
	if m.GetShare() != nil {
		err = shareRevealOK(m, from)
	} else {
		err = challengerRevealOK(m, from)
	}
	if err != nil {
		return nil, cid.Undef, err
	}
	if err := v.aboutChallenge("reveal", m.GetChallengeCid(), m.GetEpoch(), now); err != nil {
		return nil, cid.Undef, err
	}
	if err := v.accept(c, now); err != nil {
		return nil, cid.Undef, err
	}
	return m, c, nil
}

// challengerRevealOK checks a challenger's reveal.
func challengerRevealOK(m *pb.Reveal, from peer.ID) error {
	if err := author("challenger", m.GetChallenger(), from); err != nil {
		return err
	}
	if len(m.GetSecret()) != 32 {
		return fmt.Errorf("%w: secret has %d bytes, want 32", ErrMalformed, len(m.GetSecret()))
	}
	_, err := RevealedCommitment(m)
	return err
}

// shareRevealOK checks a verifier's share commitment or share reveal.
func shareRevealOK(m *pb.Reveal, from peer.ID) error {
	s := m.GetShare()
	if len(m.GetChallenger()) != 0 {
		return fmt.Errorf("%w: a share names a challenger", ErrMalformed)
	}
	if err := author("share verifier", s.GetVerifier(), from); err != nil {
		return err
	}
	if err := shareOK(s); err != nil {
		return err
	}
	if string(s.GetChallengeCid()) != string(m.GetChallengeCid()) {
		return fmt.Errorf("%w: share is for another challenge", ErrMalformed)
	}
	if len(m.GetSecret()) == 0 {
		if len(m.GetCommitment()) != 0 {
			return fmt.Errorf("%w: a share commitment carries a commitment", ErrMalformed)
		}
		return nil
	}
	if len(m.GetSecret()) != 32 || string(ShareHash(m.GetSecret())) != string(s.GetHash()) {
		return fmt.Errorf("%w: share does not match its hash", ErrMalformed)
	}
	rc, err := RevealedCommitment(m)
	if err != nil {
		return err
	}
	if ListedShare(rc.Commitment, from) == nil {
		return fmt.Errorf("%w: the commitment a share opens does not list it", ErrMalformed)
	}
	return nil
}

// ListedShare returns the share of verifier that c lists, or nil.
func ListedShare(c *pb.Commitment, verifier peer.ID) *pb.Share {
	for _, s := range c.GetShares() {
		if string(s.GetVerifier()) == string(verifier) {
			return s
		}
	}
	return nil
}

// ChallengeRequest validates a request, signed by from, to challenge a
// target now. The requester must not be the target (ErrSelfRequest).
func (v *Validator) ChallengeRequest(from peer.ID, data []byte, now time.Time) (*pb.ChallengeRequest, cid.Cid, error) {
	m := &pb.ChallengeRequest{}
	c, err := v.decode(data, v.limits.MaxCommitment, m, now)
	if err != nil {
		return nil, cid.Undef, err
	}
	if err := author("requester", m.GetRequester(), from); err != nil {
		return nil, cid.Undef, err
	}
	target, err := peer.IDFromBytes(m.GetTarget())
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("%w: target: %v", ErrMalformed, err)
	}
	if target == from {
		// A target that could ask for its own challenge would choose the
		// moment it is tested (when its device is idle, when an accomplice
		// is its challenger): only another peer may ask.
		return nil, cid.Undef, fmt.Errorf("%w: %s requests a challenge of itself", ErrSelfRequest, from)
	}
	if err := v.fresh(m.GetIssuedUnixMs(), now); err != nil {
		return nil, cid.Undef, err
	}
	if err := v.accept(c, now); err != nil {
		return nil, cid.Undef, err
	}
	return m, c, nil
}

// MaxReason bounds an attestation's reason in bytes (UTF-8 without
// control or format characters, so it prints safely: no newlines, no
// terminal escapes, no bidirectional overrides), MaxEvidence its
// evidence CIDs.
const (
	MaxReason   = 256
	MaxEvidence = 4
)

// Attestation validates an attestation signed by from (the verifier).
func (v *Validator) Attestation(from peer.ID, data []byte, now time.Time) (*pb.Attestation, cid.Cid, error) {
	m := &pb.Attestation{}
	c, err := v.decode(data, v.limits.MaxAttestation, m, now)
	if err != nil {
		return nil, cid.Undef, err
	}
	if err := author("verifier", m.GetVerifier(), from); err != nil {
		return nil, cid.Undef, err
	}
	target, err := peer.IDFromBytes(m.GetTarget())
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("%w: target: %v", ErrMalformed, err)
	}
	if target == from {
		return nil, cid.Undef, fmt.Errorf("%w: self-attestation", ErrMalformed)
	}
	if _, err := parseCID("challenge_cid", m.GetChallengeCid()); err != nil {
		return nil, cid.Undef, err
	}
	if _, ok := pb.Verdict_name[int32(m.GetVerdict())]; !ok || m.GetVerdict() == pb.Verdict_VERDICT_UNSPECIFIED {
		return nil, cid.Undef, fmt.Errorf("%w: verdict %d", ErrMalformed, m.GetVerdict())
	}
	if err := finite("data_accuracy", m.GetDataAccuracy(), 0, 1); err != nil {
		return nil, cid.Undef, err
	}
	if d := m.GetScoreDeviation(); math.IsNaN(d) || math.IsInf(d, 0) || d < 0 {
		return nil, cid.Undef, fmt.Errorf("%w: score_deviation %v", ErrMalformed, m.GetScoreDeviation())
	}
	if n := len(m.GetCheckDigest()); n != 0 && n != CheckDigestSize {
		return nil, cid.Undef, fmt.Errorf("%w: check_digest of %d bytes", ErrMalformed, n)
	}
	if r := m.GetReason(); len(r) > MaxReason || !utf8.ValidString(r) || strings.ContainsFunc(r, unprintable) {
		return nil, cid.Undef, fmt.Errorf("%w: reason of %d bytes (at most %d, UTF-8, no control or format characters)", ErrMalformed, len(r), MaxReason)
	}
	if n := len(m.GetEvidence()); n > MaxEvidence {
		return nil, cid.Undef, fmt.Errorf("%w: %d evidence CIDs, at most %d", ErrMalformed, n, MaxEvidence)
	}
	for _, e := range m.GetEvidence() {
		if _, err := parseCID("evidence", e); err != nil {
			return nil, cid.Undef, err
		}
	}
	if err := v.fresh(m.GetIssuedUnixMs(), now); err != nil {
		return nil, cid.Undef, err
	}
	// A verifier attests after the challenge's deadline, which can span
	// several epochs (a VRAM proof of a big memory): the epoch may trail
	// by as many more epochs as the deadline lasts.
	if want, ok := v.epochs.get(string(m.GetChallengeCid())); ok && want != m.GetEpoch() {
		return nil, cid.Undef, fmt.Errorf("%w: attestation of epoch %d, its challenge's is %d", ErrEpochMismatch, m.GetEpoch(), want)
	}
	if err := v.epochWithin(m.GetEpoch(), now, time.Duration(m.GetDeadlineMs())*time.Millisecond); err != nil {
		return nil, cid.Undef, err
	}
	if err := v.accept(c, now); err != nil {
		return nil, cid.Undef, err
	}
	return m, c, nil
}

// ReplayCache remembers content IDs for a fixed time, holding at most a
// fixed number (the oldest are forgotten first). Safe for concurrent use.
type ReplayCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	cap   int
	seen  map[string]time.Time
	order []string // insertion order, for eviction
}

// NewReplayCache returns a cache holding up to capacity IDs for ttl each.
func NewReplayCache(capacity int, ttl time.Duration) *ReplayCache {
	return &ReplayCache{ttl: ttl, cap: max(capacity, 1), seen: make(map[string]time.Time)}
}

// Seen reports whether id was added less than ttl before now.
func (r *ReplayCache) Seen(id string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.seen[id]
	return ok && now.Sub(at) < r.ttl
}

// AddIfAbsent records id at now unless it was added less than ttl before
// now; it reports whether it added it. Check and insert are one step.
func (r *ReplayCache) AddIfAbsent(id string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.seen[id]; ok && now.Sub(at) < r.ttl {
		return false
	}
	r.add(id, now)
	return true
}

// Forget makes id unseen again, so its next AddIfAbsent succeeds.
func (r *ReplayCache) Forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[id]; ok {
		r.seen[id] = time.Time{} // expired: evicted in turn, re-added in place
	}
}

// Add records id at now, evicting expired or, when full, the oldest IDs.
func (r *ReplayCache) Add(id string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add(id, now)
}

func (r *ReplayCache) add(id string, now time.Time) {
	if _, ok := r.seen[id]; !ok {
		r.order = append(r.order, id)
	}
	r.seen[id] = now
	for len(r.order) > 0 {
		old := r.order[0]
		if len(r.seen) <= r.cap && now.Sub(r.seen[old]) < r.ttl {
			break
		}
		delete(r.seen, old)
		r.order = r.order[1:]
	}
}

// Len returns the number of IDs held.
func (r *ReplayCache) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// RevealedCommitment decodes and checks the commitment a reveal carries:
// canonical, signed by its prover, for the reveal's challenge. It returns
// the commitment with its CID.
func RevealedCommitment(r *pb.Reveal) (Revealed, error) {
	b := r.GetCommitment()
	if len(b) == 0 {
		return Revealed{}, fmt.Errorf("%w: reveal names no commitment", ErrMalformed)
	}
	m := &pb.Commitment{}
	if err := unmarshalCanonical(b, m); err != nil {
		return Revealed{}, fmt.Errorf("reveal's commitment: %w", err)
	}
	if err := commitmentOK(m); err != nil {
		return Revealed{}, fmt.Errorf("reveal's commitment: %w", err)
	}
	if string(m.GetChallengeCid()) != string(r.GetChallengeCid()) {
		return Revealed{}, fmt.Errorf("%w: reveal's commitment is for another challenge", ErrMalformed)
	}
	if m.GetEpoch() != r.GetEpoch() {
		return Revealed{}, fmt.Errorf("%w: reveal of epoch %d opens a commitment of epoch %d", ErrMalformed, r.GetEpoch(), m.GetEpoch())
	}
	return Revealed{Commitment: m, CID: CIDOf(b)}, nil
}

// Revealed is the commitment a reveal opens, with its CID.
type Revealed struct {
	Commitment *pb.Commitment
	CID        cid.Cid
}

// epochCache maps challenge CIDs to their epochs, holding at most a fixed
// number (the oldest are forgotten first). Safe for concurrent use.
type epochCache struct {
	mu    sync.Mutex
	cap   int
	epoch map[string]uint64
	order []string
}

func newEpochCache(capacity int) *epochCache {
	return &epochCache{cap: max(capacity, 1), epoch: make(map[string]uint64)}
}

func (c *epochCache) get(key string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.epoch[key]
	return e, ok
}

func (c *epochCache) put(key string, e uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.epoch[key]; !ok {
		c.order = append(c.order, key)
	}
	c.epoch[key] = e
	for len(c.order) > c.cap {
		delete(c.epoch, c.order[0])
		c.order = c.order[1:]
	}
}

// unprintable reports whether r may not appear in an attestation's reason:
// a control character (newline, escape) or a format character (U+202E and
// the other bidirectional controls).
func unprintable(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// AttestationReason makes s a valid attestation reason: invalid UTF-8 and control or
// format characters become spaces, and it is cut to MaxReason bytes
// without splitting a character. Verifiers pass their error texts through
// it (errors.Join puts newlines between errors).
func AttestationReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unprintable(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
	if len(s) <= MaxReason {
		return s
	}
	s = s[:MaxReason]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
