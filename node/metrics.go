package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are a node's Prometheus collectors. Each node has its own
// registry, so a devnet of many nodes in one process keeps them apart.
type metrics struct {
	registry      *prometheus.Registry
	messages      *prometheus.CounterVec
	issued        prometheus.Counter
	retries       prometheus.Counter
	answered      *prometheus.CounterVec
	attested      *prometheus.CounterVec
	flagged       *prometheus.CounterVec
	checks        *prometheus.CounterVec
	rechecks      prometheus.Counter
	proveTime     prometheus.Histogram
	proveWait     prometheus.Histogram
	verifyTime    prometheus.Histogram
	peers         prometheus.Gauge
	epoch         prometheus.Gauge
	droppedJobs   prometheus.Counter
	ignored       prometheus.Counter
	received      *prometheus.CounterVec
	latency       prometheus.Histogram
	attDelay      prometheus.Histogram
	deviation     prometheus.Histogram
	score         *prometheus.GaugeVec
	void          *prometheus.CounterVec
	equivocations prometheus.Counter
	direct        *prometheus.CounterVec
	claimFetches  *prometheus.CounterVec
	withheld      prometheus.Counter
	// retriesSkipped counts misses not retried because this node was
	// overloaded while it waited for the answer.
	retriesSkipped prometheus.Counter
	// followUps counts challenges issued outside the rate's draw because
	// a failure of the target was attested and no pass since
	// (challenge.NeedsFollowUp).
	followUps prometheus.Counter
	// audits counts check-digest audits completed (tryAudit).
	audits prometheus.Counter
	// outOfEpoch counts messages ignored because their epoch is outside
	// the window (challenge.ErrOutOfEpoch), by topic.
	outOfEpoch *prometheus.CounterVec
	// epochMismatch counts messages dropped because they name another
	// epoch than their challenge's, by topic (the validator's
	// challenge.ErrEpochMismatch and Node.epochMatches).
	epochMismatch *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poai_messages_total",
			Help: "Gossip messages seen by the topic validators, by topic, result (accept, reject) and reason.",
		}, []string{"topic", "result", "reason"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "poai_challenges_retried_total", Help: "Retries this node published as challenger: challenges of a target that missed the deadline of its first one (also counted in poai_challenges_issued_total).",
		}),
		issued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "poai_challenges_issued_total", Help: "Challenges this node published as challenger: only those its own validator accepted (one it refuses never leaves the node and is logged as a failed publish).",
		}),
		answered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poai_challenges_answered_total", Help: "Challenges addressed to this node, by outcome (answered, failed, dropped).",
		}, []string{"outcome"}),
		attested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poai_attestations_published_total", Help: "Attestations this node published as verifier, by verdict.",
		}, []string{"verdict"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poai_verifier_checks_total", Help: "Other verifiers' attestations judged against this node's own verification or re-check, or by a check-digest audit (contradictions only), by outcome (agree, contradict).",
		}, []string{"outcome"}),
		rechecks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "poai_rechecks_total", Help: "Challenges this node re-verified without being one of their verifiers (sampled, or verdicts disagreed).",
		}),
		flagged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poai_claims_flagged_total", Help: "Peers flagged: unverifiable (a workload the claim must prove cannot be planned), device_report (claim disagrees with its NVML report, the catalog or physical bounds), slow_proof (passing proofs far below the claimed model's speed), underpowered (the sequential speed test: proofs slower than the peers with the same claim).",
		}, []string{"reason"}),
		proveTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "poai_prove_seconds", Help: "Time to compute and commit a proof workload.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		proveWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "poai_prove_wait_seconds", Help: "Time a challenge addressed to this node waited between its validator and the start of its proof: the prove queue and the node's event loop.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		verifyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "poai_verify_seconds", Help: "Time to verify one opening.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "poai_live_peers", Help: "Peers with a fresh device claim, this node included.",
		}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "poai_epoch", Help: "Current epoch."}),
		droppedJobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "poai_prove_queue_dropped_total", Help: "Challenges dropped because the prove queue was full.",
		}),
	}
	m.ignored = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "poai_challenges_ignored_total",
		Help: "Valid challenges not acted on: not from a scheduled challenger, a second one in the epoch, or not the planned workload.",
	})
	m.received = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "poai_attestations_received_total",
		Help: "Attestations folded into the score book, by verdict (pass, wrong_answer, late, no_answer, bad_proof).",
	}, []string{"verdict"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "poai_challenge_latency_seconds", Help: "Challenge to commitment latency reported by attestations, on the verifiers' clocks.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	})
	m.attDelay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "poai_attestation_delay_seconds", Help: "Challenge issue (challenger's clock) to attestation receipt (this node's clock): how long the network takes to judge a challenge.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
	})
	m.deviation = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "poai_score_deviation", Help: "Score deviation (max relative error of opened elements) reported by attestations.",
		Buckets: []float64{0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10},
	})
	m.score = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "poai_peer_score", Help: "Integrity score, in [0,1], of this node and of each scored peer it is connected to, as of the last trust round; a peer's series is deleted when it disconnects.",
	}, []string{"peer"})
	m.void = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "poai_challenges_void_total",
		Help: "Challenges voided by their challenger's fault, by cause: reveal (the target committed in time and the challenger's secret, or the share of a verifier its commitment lists, came late or never; the withholder is contradicted in this node's book) or duplicate (two challenges of one target from one challenger in an epoch).",
	}, []string{"cause"})
	m.equivocations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "poai_equivocations_total",
		Help: "Challenges whose target this node saw sign two different commitments (equivocation: judged a wrong answer).",
	})
	m.claimFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "poai_claim_fetches_total",
		Help: "Claims this node asked a challenger for over /poai/claim/1.0.0, having received a challenge of itself from a peer whose claim it did not know (after a restart, typically), by result (fetched: a valid claim came; failed: none did).",
	}, []string{"result"})
	m.direct = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "poai_direct_messages_total",
		Help: "Messages this node also sent straight to their subject over /poai/direct/1.0.0 (challenges and reveals to their target), by topic and result (sent: the receiver accepted it; rejected: its validator did not, usually because the gossip copy came first; failed: no stream or no answer).",
	}, []string{"topic", "result"})
	m.withheld = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "poai_verdicts_withheld_total",
		Help: "Late or missing answers this node did not attest because its own process was overloaded at the time (Go scheduling latency p99 over half the allowance): its clock could not judge them.",
	})
	m.retriesSkipped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "poai_challenges_retry_skipped_total",
		Help: "Missed deadlines of this node's challenges not retried because this node was overloaded while it waited (its verdict on the miss is withheld too).",
	})
	m.followUps = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "poai_challenges_follow_up_total",
		Help: "Challenges this node scheduled outside the challenge rate's draw because a verifier in good standing attested a failure of the target and no pass of that epoch or a later one was heard (a follow-up, issued in the next epoch).",
	})
	m.audits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "poai_audits_total",
		Help: "Check-digest audits this node completed: challenges it neither verified nor re-checked whose verifiers' check digests it recomputed once the secret was revealed (a wrong or missing one counts in poai_verifier_checks_total as a contradiction).",
	})
	m.outOfEpoch = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "poai_messages_out_of_epoch_total",
		Help: "Gossip messages ignored because their epoch is outside this node's window (replays of an earlier epoch, or a clock far off), by topic; also counted in poai_messages_total as ignore/out_of_epoch.",
	}, []string{"topic"})
	m.epochMismatch = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "poai_messages_epoch_mismatch_total",
		Help: "Commitments, openings, reveals and attestations dropped without a gossipsub penalty because they name another epoch than their challenge's (by the validator when the challenge came first, by the handler when it came after), by topic; the validator's also count in poai_messages_total as ignore/epoch_mismatch.",
	}, []string{"topic"})
	m.registry.MustRegister(m.outOfEpoch, m.epochMismatch)
	m.registry.MustRegister(m.withheld, m.retriesSkipped, m.followUps, m.audits, m.direct, m.claimFetches, m.received, m.latency, m.attDelay, m.deviation, m.score, m.void, m.equivocations, m.flagged, m.checks, m.rechecks)
	m.registry.MustRegister(m.ignored, m.messages, m.issued, m.retries, m.answered, m.attested, m.proveTime, m.proveWait, m.verifyTime, m.peers, m.epoch, m.droppedJobs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
