package scoring

import (
	"math"
	"slices"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// SpeedParams set a SpeedMonitor's sequential test: is a peer's device
// slower than its claim, though every answer came inside the deadline's
// slack?
//
// Each passed challenge gives a speed s = anticipated / latency: the plan's
// time for the claimed device over the time the answer took, on the
// verifier's clock. Its log, less the median log-speed of every peer of the
// same class (claimed model and workload) in a recent window, is the
// residual r; a device as fast as its peers has r ≈ 0, one delivering a
// fraction f of their speed r ≈ ln f. The monitor runs Page's CUSUM of the
// log-likelihood ratio between N(ln Tolerated, σ²) and N(ln Flagged, σ²)
// (Page, "Continuous inspection schemes", Biometrika 1954), σ the
// within-peer spread of residuals, robustly estimated (1.4826·MAD) and at
// least MinSigma, each residual clipped to [ln Flagged − 4σ, ln Tolerated +
// 4σ] so that one wild latency moves it by a bounded step. The peer is flagged once the
// statistic reaches h = ln(Horizon/Alpha): a peer delivering Tolerated of its
// peers' speed, or more, is flagged within Horizon observations with
// probability at most Alpha (each excursion of the CUSUM from zero crosses h
// with probability at most e^−h under the tolerated mean, and there are at
// most Horizon excursions).
type SpeedParams struct {
	// Tolerated is the speed fraction an honest device may deliver
	// (spread between devices of one model, network); Flagged the one to
	// flag. 0 < Flagged < Tolerated ≤ 1.
	Tolerated, Flagged float64
	// Alpha bounds the probability that a device at Tolerated or faster is
	// flagged within Horizon observations.
	Alpha   float64
	Horizon int
	// MinSigma floors the residuals' spread (log units).
	MinSigma float64
	// MinPeers is how many distinct peers a class's window must hold
	// before its median is a reference (fewer: not observed).
	MinPeers int
	// Window is how many recent samples per class set its median and
	// spread.
	Window int
}

// DefaultSpeedParams flags a device at 90 % of its peers' speed, tolerates
// 95 %, with a false-flag probability of 10⁻⁵ per device over 10⁵ passed
// challenges (about a month at one challenge per 30 s epoch).
func DefaultSpeedParams() SpeedParams {
	return SpeedParams{Tolerated: 0.95, Flagged: 0.90, Alpha: 1e-5, Horizon: 100_000, MinSigma: 0.02, MinPeers: 4, Window: 512}
}

// Threshold is the CUSUM's alarm level h = ln(Horizon/Alpha).
func (p SpeedParams) Threshold() float64 { return math.Log(float64(p.Horizon) / p.Alpha) }

// SpeedState is one peer's standing in a SpeedMonitor.
type SpeedState struct {
	// Samples counts the observations tested (those with a reference).
	Samples int `json:"samples"`
	// Relative is exp of the mean residual of the peer's recent samples:
	// its speed as a fraction of its peers' median.
	Relative float64 `json:"relative"`
	// CUSUM is the test statistic, Threshold the level that flags.
	CUSUM     float64 `json:"cusum"`
	Threshold float64 `json:"threshold"`
	// Flagged stays set once the statistic reached Threshold.
	Flagged bool `json:"flagged"`
}

// Limits of a SpeedMonitor's memory: peers and classes tracked (least
// recently used forgotten), residuals kept per peer.
const (
	maxSpeedPeers     = 4096
	maxSpeedClasses   = 64
	maxPeerClasses    = 8
	speedPeerHistory  = 32
	speedMinOwnSample = 3
)

// SpeedMonitor keeps the sequential speed test of every peer (SpeedParams).
// Memory is bounded (maxSpeedPeers peers, maxSpeedClasses classes, Window
// samples each). Safe for concurrent use.
type SpeedMonitor struct {
	p       SpeedParams
	mu      sync.Mutex
	peers   *simplelru.LRU[string, *speedPeer]
	classes *simplelru.LRU[string, *speedClass]
}

type speedPeer struct {
	state     SpeedState
	residuals []float64            // the latest, at most speedPeerHistory
	byClass   map[string][]float64 // own recent log-speeds per class, at most maxPeerClasses classes
}

type speedClass struct {
	logs    []float64      // ring of recent log-speeds
	who     []string       // their peers
	count   map[string]int // samples in logs per peer
	devs    []float64      // ring of recent within-peer |deviations|
	nextL   int
	nextD   int
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
		c = &speedClass{}
		m.classes.Add(class, c)
	}
	p, ok := m.peers.Get(peer)
	if !ok {
		p = &speedPeer{byClass: map[string][]float64{}}
		p.state.Threshold = m.p.Threshold()
		m.peers.Add(peer, p)
	}
	// The reference is the class's median before this sample joins it.
	ref, peersIn := c.median()
	own, seen := p.byClass[class]
	if !seen && len(p.byClass) >= maxPeerClasses {
		clear(p.byClass) // a peer changing its claim over and over starts its own history over
	}
	if len(own) >= speedMinOwnSample {
		c.addDev(math.Abs(y-median(own)), m.p.Window)
	}
	p.byClass[class] = appendCapped(own, y, speedPeerHistory)
	c.add(peer, y, m.p.Window)
	if peersIn < m.p.MinPeers {
		return p.state, false
	}
	c.scratch = append(c.scratch[:0], c.devs...)
	sigma := math.Max(m.p.MinSigma, 1.4826*medianInPlace(c.scratch))
	mu0, mu1 := math.Log(m.p.Tolerated), math.Log(m.p.Flagged)
	r := math.Max(mu1-4*sigma, math.Min(mu0+4*sigma, y-ref))
	llr := (mu0 - mu1) / (sigma * sigma) * ((mu0+mu1)/2 - r)
	p.state.CUSUM = math.Max(0, p.state.CUSUM+llr)
	p.state.Samples++
	p.residuals = appendCapped(p.residuals, y-ref, speedPeerHistory)
	mean := 0.0
	for _, x := range p.residuals {
		mean += x
	}
	p.state.Relative = math.Exp(mean / float64(len(p.residuals)))
	if p.state.CUSUM >= p.state.Threshold {
		p.state.Flagged = true
	}
	return p.state, true
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

func (c *speedClass) addDev(d float64, window int) {
	if len(c.devs) < window {
		c.devs = append(c.devs, d)
		return
	}
	c.devs[c.nextD] = d
	c.nextD = (c.nextD + 1) % window
}

// median returns the class's median log-speed and how many distinct peers
// its window holds.
func (c *speedClass) median() (float64, int) {
	if len(c.logs) == 0 {
		return 0, 0
	}
	c.scratch = append(c.scratch[:0], c.logs...)
	return medianInPlace(c.scratch), len(c.count)
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
