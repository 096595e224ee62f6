package devnet

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"
	"github.com/poai-network/poai/scoring"
)

// PeerReport is one line of the devnet report.
type PeerReport struct {
	PeerID       string    `json:"peer_id"`
	Role         node.Role `json:"role"`
	Challenges   int       `json:"challenges_received"`
	Passed       int       `json:"passed"`
	Failed       int       `json:"failed"`
	LatencyP50   float64   `json:"latency_p50_ms"`
	LatencyP99   float64   `json:"latency_p99_ms"`
	MaxDeviation float64   `json:"max_score_deviation"`
	Accuracy     float64   `json:"accuracy"`
	FinalScore   float64   `json:"final_score"`
	ClaimedTOPS  float64   `json:"claimed_int8_tops"`
	Backend      string    `json:"backend"`
	// GossipScore is the mean over the honest peers of its shard of the
	// gossipsub score each gives the peer (application score plus the
	// router's counters) or, where one is not connected to it, of the
	// application score it holds; Graylisted is true when it is below
	// p2p.GraylistThreshold.
	GossipScore float64 `json:"gossip_score"`
	Graylisted  bool    `json:"graylisted"`
	// CaughtEpoch is the first epoch from which the observer's trust
	// round kept the peer's application score below the graylist
	// threshold to the end; -1 if it never did.
	CaughtEpoch int64 `json:"caught_epoch"`
	// Trust is the first honest observer's EigenTrust standing of the
	// peer at the end (trust, relative trust, bad fraction, evidence).
	Trust       scoring.PeerTrust `json:"trust"`
	ClaimedBF16 float64           `json:"claimed_bf16_tflops"`
	// HeardBy counts the honest peers of its shard holding a claim of the
	// peer heard within the last [challenge] peer_ttl_epochs, and
	// HonestLinks those connected to it: a peer no honest peer hears
	// cannot be challenged, and one linked only to peers the honest ones
	// graylist is heard by none.
	HeardBy     int `json:"heard_by"`
	HonestLinks int `json:"honest_links"`
	// HonestViews counts the honest peers of its shard (the views
	// GossipScore averages) and GraylistedBy those whose score for it is
	// below p2p.GraylistThreshold: a peer graylisted by most views whose
	// mean stays above the threshold is out of most of the honest mesh.
	HonestViews  int `json:"honest_views"`
	GraylistedBy int `json:"graylisted_by"`
	// Answered and ProveFailed are the peer's own counts (Stats): the
	// challenges of it it proved and committed, and those whose proof it
	// abandoned (past its limit, or an error). Against Challenges, the
	// observer's attested record, they tell a challenge nobody judged
	// from one never received.
	Answered    int `json:"answered"`
	ProveFailed int `json:"prove_failed"`
	// ChallengerSlots and VerifierSlots are the slots the observer saw
	// the peer hold: the epochs and targets whose challenger ranking it
	// headed in the observer's schedule (issued or not), and the
	// verifier places of the challenges the observer followed. A slot
	// held by a peer that never acts on it is a challenge not issued, or
	// a verdict never given.
	ChallengerSlots int `json:"challenger_slots"`
	VerifierSlots   int `json:"verifier_slots"`
	// FlaggedBy counts the honest peers of its shard whose speed test
	// (scoring.SpeedMonitor) flagged the peer as slower than the peers
	// with its claim; Relative is the first honest observer's estimate of
	// its speed against theirs (0: not tested).
	FlaggedBy int     `json:"speed_flagged_by"`
	Relative  float64 `json:"relative_speed,omitempty"`
	// Failures are the observer's latest attested failures of the peer
	// (at most maxFailures, newest first), each with the verifier's reason
	// and the evidence's CIDs.
	Failures []Failure `json:"failures,omitempty"`
}

// Failure is one attested failure: which verifier said what about which
// challenge, and the CIDs of the commitment and opening it rests on.
type Failure struct {
	Challenge string   `json:"challenge"`
	Epoch     uint64   `json:"epoch"`
	Verifier  string   `json:"verifier"`
	Verdict   string   `json:"verdict"`
	Reason    string   `json:"reason,omitempty"`
	Evidence  []string `json:"evidence,omitempty"`
}

// maxFailures bounds PeerReport.Failures.
const maxFailures = 3

// ReportSchema is the version of Report's JSON layout: 2 since every
// field is snake_case (measured.int8_tops, not measured.Int8TOPS).
const ReportSchema = 2

// Report is the devnet's result.
type Report struct {
	// Schema is ReportSchema.
	Schema       int            `json:"schema"`
	Nodes        int            `json:"nodes"`
	Epochs       int64          `json:"epochs"`
	EpochLength  string         `json:"epoch_length"`
	Measured     gpu.Throughput `json:"measured"`
	GPU          string         `json:"gpu,omitempty"`
	Peers        []PeerReport   `json:"peers"`
	HonestMin    float64        `json:"honest_min_score"`
	AdversaryMax float64        `json:"adversary_max_score"`
	HonestPass   float64        `json:"honest_pass_rate"`
	Separated    bool           `json:"separated"`
	// AllCaught is true when every adversary is graylisted and below the
	// honest minimum; HonestGraylisted counts honest peers graylisted.
	AllCaught        bool `json:"all_caught"`
	HonestGraylisted int  `json:"honest_graylisted"`
	// Unobserved counts peers left out because no honest peer shares
	// their shard.
	Unobserved int `json:"unobserved,omitempty"`
	// Emulator reports the emulated devices' overruns; nil without any.
	Emulator *EmulatorReport `json:"emulator,omitempty"`
	Elapsed  time.Duration   `json:"-"`
	ElapsedS float64         `json:"elapsed_s"`
}

// Report builds the report. Counts, latencies, deviation and accuracy are
// the view of one honest observer (the first honest node other than the
// peer); the final score is the mean over every honest node's score of the
// peer, itself excluded. Separated is true when every adversary scores
// below every honest peer.
func (d *Devnet) Report() (Report, error) {
	r := Report{Schema: ReportSchema, Nodes: len(d.Nodes), Epochs: max(d.Epoch(), 0), EpochLength: d.EpochLength.String(),
		Measured: d.Measured, GPU: d.GPU, HonestMin: math.Inf(1), AdversaryMax: math.Inf(-1)}
	var honestPass, honestTotal int
	for _, p := range d.Nodes {
		var observer *node.Node
		var sum float64
		var views int
		for _, o := range d.Nodes {
			if o == p || o.Role().Adversary() || !sameShard(o, p) {
				continue
			}
			if observer == nil {
				observer = o
			}
			sum += o.Book().Score(p.ID().String())
			views++
		}
		if observer == nil {
			r.Unobserved++ // a shard without an honest peer: nobody to judge it
			continue
		}
		s, err := observer.Book().Summarize(p.ID().String())
		if err != nil {
			return r, err
		}
		pr := PeerReport{
			PeerID: p.ID().String(), Role: p.Role(), Challenges: s.Challenges, Passed: s.Passed, Failed: s.Failed,
			LatencyP50: s.LatencyP50MS, LatencyP99: s.LatencyP99MS, MaxDeviation: s.MaxDeviation, Accuracy: s.Accuracy,
			FinalScore: sum / float64(views), ClaimedTOPS: p.Claim().GetInt8Tops(), ClaimedBF16: p.Claim().GetBf16Tflops(),
			Backend: p.Claim().GetBackend(),
		}
		var gsum float64
		var gviews int
		for _, o := range d.Nodes {
			if o == p || o.Role().Adversary() || !sameShard(o, p) {
				continue
			}
			// An honest peer not connected to p has no router score for
			// it; the application score it holds is what its router
			// would start from on a connection (graylisted or not).
			g, ok := o.GossipScores()[p.ID()]
			if !ok {
				g = o.Observer().AppScore(p.ID())
			}
			gsum += g
			gviews++
			if g < p2p.GraylistThreshold {
				pr.GraylistedBy++
			}
			if o.Observer().Hears(p.ID()) {
				pr.HeardBy++
			}
			if st, ok := o.Observer().Speed(p.ID()); ok && st.Flagged {
				pr.FlaggedBy++
			}
			if slices.Contains(o.ConnectedPeers(), p.ID()) {
				pr.HonestLinks++
			}
		}
		if gviews > 0 {
			pr.GossipScore = gsum / float64(gviews)
		}
		pr.HonestViews = gviews
		st := p.Stats()
		pr.Answered, pr.ProveFailed = st.Answered, st.ProveFailed
		pr.ChallengerSlots, pr.VerifierSlots = observer.Observer().Slots(p.ID(), 0, math.MaxUint64)
		pr.Graylisted = pr.GossipScore < p2p.GraylistThreshold
		pr.CaughtEpoch = caughtEpoch(observer, p.ID(), r.Epochs)
		pr.Trust, _ = observer.Book().PeerTrust(p.ID().String())
		if st, ok := observer.Observer().Speed(p.ID()); ok && st.Samples > 0 {
			pr.Relative = st.Relative
		}
		if pr.Failures, err = failures(observer, p.ID().String()); err != nil {
			return r, err
		}
		if p.Role().Adversary() {
			r.AdversaryMax = math.Max(r.AdversaryMax, pr.FinalScore)
		} else {
			r.HonestMin = math.Min(r.HonestMin, pr.FinalScore)
			honestPass += pr.Passed
			honestTotal += pr.Challenges
		}
		r.Peers = append(r.Peers, pr)
	}
	sort.SliceStable(r.Peers, func(i, j int) bool { return r.Peers[i].FinalScore > r.Peers[j].FinalScore })
	if honestTotal > 0 {
		r.HonestPass = float64(honestPass) / float64(honestTotal)
	}
	if math.IsInf(r.AdversaryMax, -1) {
		r.AdversaryMax = 0
	}
	r.Separated = r.AdversaryMax < r.HonestMin
	r.AllCaught = r.Separated
	for _, p := range r.Peers {
		if p.Role.Adversary() && !p.Graylisted {
			r.AllCaught = false
		}
		if !p.Role.Adversary() && p.Graylisted {
			r.HonestGraylisted++
		}
	}
	if w, o := d.Overruns(); w > 0 {
		r.Emulator = &EmulatorReport{Workloads: w, Overruns: o, Share: float64(o) / float64(w)}
		r.Emulator.Overloaded = r.Emulator.Share > MaxOverrunShare
	}
	return r, nil
}

// EmulatorReport is what a devnet's emulated devices say of the host
// (Devnet.Overruns): Overloaded when more than MaxOverrunShare of their
// workloads overran, a test-bed failure that blames no node.
type EmulatorReport struct {
	Workloads  uint64  `json:"workloads"`
	Overruns   uint64  `json:"overruns"`
	Share      float64 `json:"overrun_share"`
	Overloaded bool    `json:"overloaded"`
}

// sameShard reports whether a and b share a shard: only then does one
// judge the other.
func sameShard(a, b *node.Node) bool {
	sa, _ := a.Shard()
	sb, _ := b.Shard()
	return sa == sb
}

// caughtEpoch returns the first epoch from which every trust round of
// observer put p's application score below the graylist threshold, or -1.
// A peer whose claim observer cannot challenge (FlagUnverifiable) counts
// as caught from observer's first round.
func caughtEpoch(observer *node.Node, p peer.ID, last int64) int64 {
	hist, err := observer.Book().TrustHistory(0, uint64(max(last, 0)))
	if err != nil || len(hist) == 0 {
		return -1
	}
	if observer.Observer().Unverifiable(p) {
		return int64(hist[0].Epoch) // nobody can challenge its claim: graylisted from the start
	}
	minEv := scoring.DefaultTrustParams().MinEvidence
	caught := int64(-1)
	for _, v := range hist {
		if node.AppScore(v.Peers[p.String()], minEv) < p2p.GraylistThreshold {
			if caught < 0 {
				caught = int64(v.Epoch)
			}
		} else {
			caught = -1
		}
	}
	return caught
}

// failures returns the observer's latest maxFailures attested failures of
// peer, newest first.
func failures(observer *node.Node, peer string) ([]Failure, error) {
	recs, err := observer.Book().Attestations(peer, 200)
	if err != nil {
		return nil, err
	}
	var out []Failure
	for _, a := range recs {
		if a.Pass() {
			continue
		}
		out = append(out, Failure{Challenge: a.Challenge, Epoch: a.Epoch, Verifier: a.Verifier, Verdict: a.Verdict, Reason: a.Reason, Evidence: a.Evidence})
		if len(out) == maxFailures {
			break
		}
	}
	return out, nil
}
