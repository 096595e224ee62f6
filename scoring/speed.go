package scoring

import (
	"math"
	"slices"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// SpeedParams set a SpeedMonitor's test: is a peer's device slower than
// its claim, though every answer came inside the deadline's slack?
//
// Each passed challenge gives a speed s = anticipated / latency: the plan's
// time for the claimed device over the time the answer took, on the
// verifier's clock. Its log, less the reference of its class (claimed model
// and workload) — the median over the other peers of the class of each
// one's median log-speed in a recent window, one vote per peer — is the
// residual r; a device as fast as its peers has r ≈ 0, one delivering a
// fraction f of their speed r ≈ ln f. Let m = (ln Tolerated + ln Flagged)/2
// be the midpoint between what an honest device may deliver and what is
// flagged, and q the other peers' share of answers below m, each peer
// weighing one (the population's own tail of slow answers, at least
// MinTail). A peer whose latest n ≥ MinSamples residuals in the class (at
// most PeerWindow) have a median below m, and k of them below m with
// P(Binomial(n, q) ≥ k) ≤ Alpha/(2·Horizon), is flagged; so is one whose
// latest residuals over all its classes pass the same test against the
// largest of their classes' q; until a later test no longer says so: a
// sign test against its own class, robust to heavy-tailed latencies (a few
// slow answers move it by a few counts, never by their size). If an honest
// device's answers fall below m no more often than its class's, it is
// flagged within Horizon observations with probability at most Alpha (a
// union bound over the tests).
type SpeedParams struct {
	// Tolerated is the speed fraction an honest device may deliver
	// (spread between devices of one model, network); Flagged the one to
	// flag. 0 < Flagged < Tolerated ≤ 1.
	Tolerated, Flagged float64
	// Alpha bounds the probability that an honest device is flagged
	// within Horizon observations.
	Alpha   float64
	Horizon int
	// MinSamples and PeerWindow bound the residuals a test uses.
	MinSamples, PeerWindow int
	// MinTail floors q, the class's share of answers below the midpoint.
	MinTail float64
	// MinPeers is how many distinct peers a class's window must hold
	// before its median is a reference (fewer: not observed).
	MinPeers int
	// Window is how many recent samples per class set its median and
	// tail.
	Window int
}

// DefaultSpeedParams flags a device at 90 % of its peers' speed, tolerates
// 95 %, with a false-flag probability of 10⁻⁵ per device over 10⁵ passed
// challenges (about a month at one challenge per 30 s epoch).
func DefaultSpeedParams() SpeedParams {
	return SpeedParams{Tolerated: 0.95, Flagged: 0.90, Alpha: 1e-5, Horizon: 100_000,
		MinSamples: 12, PeerWindow: 64, MinTail: 0.05, MinPeers: 4, Window: 512}
}

// SpeedState is one peer's standing in a SpeedMonitor.
type SpeedState struct {
	// Samples counts the observations tested (those with a reference).
	Samples int `json:"samples"`
	// Relative is exp of the median residual of the peer's latest samples
	// in the class last tested: its speed as a fraction of its peers'.
	Relative float64 `json:"relative"`
	// PValue is the last test's P(Binomial(n, q) ≥ k); it flags at or
	// below Alpha/Horizon.
	PValue float64 `json:"p_value"`
	// Flagged is the last test's outcome.
	Flagged bool `json:"flagged"`
}

// Limits of a SpeedMonitor's memory: peers and classes tracked (least
// recently used forgotten).
const (
	maxSpeedPeers   = 4096
	maxSpeedClasses = 64
)

// SpeedMonitor keeps the speed test of every peer (SpeedParams). Memory
// is bounded (maxSpeedPeers peers, maxSpeedClasses classes, Window samples
// each). Safe for concurrent use.
type SpeedMonitor struct {
	p       SpeedParams
	mu      sync.Mutex
	peers   *simplelru.LRU[string, *speedPeer]
	classes *simplelru.LRU[string, *speedClass]
}

type speedPeer struct {
	state SpeedState
	// residuals are the latest (at most PeerWindow) per class, at most
	// maxPeerClasses classes: a device weak at one workload is judged on
	// that workload, not averaged with the others. pooled are the latest
	// of all its classes, each with its class's tail q when it came: a
	// device weak at everything is judged on every answer, sooner.
	residuals map[string][]float64
	pooled    []pooledResidual
}

// pooledResidual is one residual of speedPeer.pooled and its class's q.
type pooledResidual struct{ r, q float64 }

// maxPeerClasses bounds the classes a peer's residuals are kept for; a
// peer changing its claim over and over starts over.
const maxPeerClasses = 8

type speedClass struct {
	logs    []float64      // ring of recent log-speeds
	who     []string       // their peers
	count   map[string]int // samples in logs per peer
	nextL   int
	scratch []float64
}

// NewSpeedMonitor returns a monitor with p.
func NewSpeedMonitor(p SpeedParams) *SpeedMonitor {
	peers, _ := simplelru.NewLRU[string, *speedPeer](maxSpeedPeers, nil)
	classes, _ := simplelru.NewLRU[string, *speedClass](maxSpeedClasses, nil)
	return &SpeedMonitor{p: p, peers: peers, classes: classes}
}

// Observe records that peer passed a challenge of class at speed
// anticipated/latency (> 0) and returns its state; tested is false when the
// class has no reference yet (fewer than MinPeers peers in its window) or
// the speed is not a positive finite number.
func (m *SpeedMonitor) Observe(peer, class string, speed float64) (st SpeedState, tested bool) {
	if !(speed > 0) || math.IsInf(speed, 0) {
		return SpeedState{}, false
	}
	y := math.Log(speed)
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.classes.Get(class)
	if !ok {
		c = &speedClass{count: map[string]int{}}
		m.classes.Add(class, c)
	}
	p, ok := m.peers.Get(peer)
	if !ok {
		p = &speedPeer{residuals: map[string][]float64{}}
		m.peers.Add(peer, p)
	}
	// The reference and the tail are the other peers' of the class, before
	// this sample, one vote per peer: a peer's own answers never set the
	// bar they are held to, and many answers of a few peers do not either.
	mid := (math.Log(m.p.Tolerated) + math.Log(m.p.Flagged)) / 2
	ref, q, peersIn := c.reference(peer, mid)
	c.add(peer, y, m.p.Window)
	if peersIn < m.p.MinPeers {
		// No bar to hold it to: a flag from an earlier test lapses.
		p.state.Flagged = false
		return p.state, false
	}
	q = math.Max(m.p.MinTail, q)
	res, seen := p.residuals[class]
	if !seen && len(p.residuals) >= maxPeerClasses {
		clear(p.residuals)
	}
	res = appendCapped(res, y-ref, m.p.PeerWindow)
	p.residuals[class] = res
	if len(p.pooled) < m.p.PeerWindow {
		p.pooled = append(p.pooled, pooledResidual{y - ref, q})
	} else {
		copy(p.pooled, p.pooled[1:])
		p.pooled[len(p.pooled)-1] = pooledResidual{y - ref, q}
	}
	p.state.Samples++
	// Two tests, each at half the level (a union bound keeps Alpha): the
	// class's own answers, and all of the peer's answers against the
	// largest tail q among their classes (a binomial with the largest q
	// bounds the sum of binomials with smaller ones).
	level := m.p.Alpha / float64(m.p.Horizon) / 2
	flagClass, pClass, medClass := m.signTest(res, q, mid, level)
	all := make([]float64, len(p.pooled))
	qMax := 0.0
	for i, x := range p.pooled {
		all[i], qMax = x.r, math.Max(qMax, x.q)
	}
	flagAll, pAll, medAll := m.signTest(all, qMax, mid, level)
	p.state.Relative, p.state.PValue = math.Exp(medClass), pClass
	if pAll < pClass {
		p.state.Relative, p.state.PValue = math.Exp(medAll), pAll
	}
	// Not sticky: a peer whose class's bar moved back, or whose answers
	// recovered, is cleared by its next test.
	p.state.Flagged = flagClass || flagAll
	return p.state, true
}

// signTest reports whether residuals res (at least MinSamples) have a
// median below mid and more of them below mid than a tail q explains at
// level; with the p-value and the median.
func (m *SpeedMonitor) signTest(res []float64, q, mid, level float64) (flag bool, p, med float64) {
	k := 0
	for _, r := range res {
		if r < mid {
			k++
		}
	}
	med = median(res)
	p = binomialTail(len(res), k, q)
	return len(res) >= m.p.MinSamples && med < mid && p <= level, p, med
}

// binomialTail returns P(Binomial(n, q) ≥ k).
func binomialTail(n, k int, q float64) float64 {
	if k <= 0 {
		return 1
	}
	if q >= 1 {
		return 1
	}
	lq, l1q := math.Log(q), math.Log1p(-q)
	lgN, _ := math.Lgamma(float64(n + 1))
	sum := 0.0
	for i := k; i <= n; i++ {
		a, _ := math.Lgamma(float64(i + 1))
		b, _ := math.Lgamma(float64(n - i + 1))
		sum += math.Exp(lgN - a - b + float64(i)*lq + float64(n-i)*l1q)
	}
	return math.Min(1, sum)
}

// State returns peer's state, if the monitor holds one.
func (m *SpeedMonitor) State(peer string) (SpeedState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.peers.Peek(peer)
	if !ok {
		return SpeedState{}, false
	}
	return p.state, true
}

func (c *speedClass) add(peer string, y float64, window int) {
	if c.count == nil {
		c.count = map[string]int{}
	}
	c.count[peer]++
	if len(c.logs) < window {
		c.logs, c.who = append(c.logs, y), append(c.who, peer)
		return
	}
	old := c.who[c.nextL]
	if c.count[old]--; c.count[old] == 0 {
		delete(c.count, old)
	}
	c.logs[c.nextL], c.who[c.nextL] = y, peer
	c.nextL = (c.nextL + 1) % window
}

// reference returns, over the class's window without peer's answers, the
// median of the other peers' own median log-speeds (one vote per peer),
// the share of their answers below that median + mid (each peer's answers
// weighing 1 together), and how many other peers there are.
func (c *speedClass) reference(peer string, mid float64) (ref, q float64, peers int) {
	byPeer := map[string][]float64{}
	for i, l := range c.logs {
		if w := c.who[i]; w != peer {
			byPeer[w] = append(byPeer[w], l)
		}
	}
	if len(byPeer) == 0 {
		return 0, 0, 0
	}
	c.scratch = c.scratch[:0]
	for _, ls := range byPeer {
		c.scratch = append(c.scratch, median(ls))
	}
	ref = medianInPlace(c.scratch)
	for _, ls := range byPeer {
		below := 0
		for _, l := range ls {
			if l-ref < mid {
				below++
			}
		}
		q += float64(below) / float64(len(ls))
	}
	return ref, q / float64(len(byPeer)), len(byPeer)
}

// median returns the median of xs (0 for none), leaving xs as it is.
func median(xs []float64) float64 {
	return medianInPlace(slices.Clone(xs))
}

// medianInPlace returns the median of xs (0 for none), reordering xs
// (Hoare's selection, expected O(n)).
func medianInPlace(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	hi := selectKth(xs, n/2)
	if n%2 == 1 {
		return hi
	}
	return (slices.Max(xs[:n/2]) + hi) / 2
}

// selectKth reorders xs so that xs[k] is its k-th smallest, everything
// before it no larger, and returns it.
func selectKth(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		pivot := xs[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}

func appendCapped(xs []float64, x float64, n int) []float64 {
	if len(xs) < n {
		return append(xs, x)
	}
	copy(xs, xs[1:])
	xs[len(xs)-1] = x
	return xs
}
