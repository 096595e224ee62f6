package node

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge/pb"
)

// ProofRecord is one challenge this node was the target of, as it saw
// it: when the challenge came, how long its proof took, whether it
// opened, and the verdicts its verifiers attested, with what to check
// when one failed. It answers an operator's "why did my challenge fail"
// (Node.Proofs, GET /api/v1/proofs, `poai proofs`).
type ProofRecord struct {
	Challenge  string `json:"challenge"`
	Challenger string `json:"challenger"`
	Epoch      uint64 `json:"epoch"`
	Workload   string `json:"workload"`
	// DeadlineMS is the challenge's deadline; ProveMS the time from the
	// challenge passing this node's validator to its commitment (0: no
	// commitment).
	DeadlineMS float64   `json:"deadline_ms"`
	ReceivedAt time.Time `json:"received_at"`
	ProveMS    float64   `json:"prove_ms,omitempty"`
	// ProveError is why the proof did not complete, if it did not.
	ProveError string `json:"prove_error,omitempty"`
	// Opened is whether this node published its opening (it needs the
	// challenger's secret and every listed verifier's share).
	Opened bool `json:"opened"`
	// Verdicts are the verifiers' attestations heard, by verifier peer ID.
	Verdicts map[string]string `json:"verdicts"`
	// Reasons are the failing verifiers' own explanations (which check
	// failed), by verifier peer ID.
	Reasons map[string]string `json:"reasons,omitempty"`
	// Check says what to look at when a verdict other than pass came, or
	// none yet; empty when every verdict heard is a pass.
	Check string `json:"check,omitempty"`
}

// maxProofRecords is how many of its latest challenges a node keeps in
// its proof history.
const maxProofRecords = 64

// proofHistory is the loop goroutine's record of this node's latest
// challenges as a target, oldest first, at most maxProofRecords.
type proofHistory struct {
	order []string
	byCID map[string]*ProofRecord
}

// get returns the record of challenge c, or nil.
func (h *proofHistory) get(c cid.Cid) *ProofRecord {
	return h.byCID[c.KeyString()]
}

// add starts the record of challenge ch (CID c) received at at,
// forgetting the oldest beyond maxProofRecords.
func (h *proofHistory) add(ch *pb.Challenge, c cid.Cid, at time.Time) {
	if h.byCID == nil {
		h.byCID = map[string]*ProofRecord{}
	}
	if _, ok := h.byCID[c.KeyString()]; ok {
		return
	}
	h.byCID[c.KeyString()] = &ProofRecord{Challenge: c.String(), Challenger: peer.ID(ch.GetChallenger()).String(), Epoch: ch.GetEpoch(),
		Workload: workloadName(ch.GetWorkload()), DeadlineMS: float64(ch.GetDeadlineMs()), ReceivedAt: at, Verdicts: map[string]string{}}
	h.order = append(h.order, c.KeyString())
	if len(h.order) > maxProofRecords {
		delete(h.byCID, h.order[0])
		h.order = h.order[1:]
	}
}

// list returns copies of the records, most recent first, each with its
// Check filled in.
func (h *proofHistory) list() []ProofRecord {
	out := make([]ProofRecord, 0, len(h.order))
	for i := len(h.order) - 1; i >= 0; i-- {
		r := *h.byCID[h.order[i]]
		r.Verdicts, r.Reasons = maps.Clone(r.Verdicts), maps.Clone(r.Reasons)
		r.Check = r.check()
		out = append(out, r)
	}
	return out
}

// check says what an operator should look at for r, or "" when every
// verdict heard is a pass.
func (r *ProofRecord) check() string {
	failed := 0
	for _, v := range r.Verdicts {
		if v != "pass" {
			failed++
		}
	}
	switch {
	case r.ProveError != "":
		return "the proof did not complete: " + r.ProveError
	case r.ProveMS == 0:
		return "no commitment yet: the device is still proving, or the challenge was dropped (a full prove queue)"
	case r.ProveMS > r.DeadlineMS:
		return fmt.Sprintf("committed %.0f ms after a %.0f ms deadline: the device is slower than its claim, was busy with other proofs, or throttled (compare `poai doctor` and the claim)", r.ProveMS, r.DeadlineMS)
	case !r.Opened && time.Since(r.ReceivedAt) > 2*time.Duration(r.DeadlineMS)*time.Millisecond:
		return "never opened: the challenger's secret or a verifier's share did not reach this node (such a challenge is void, and the withholder blamed)"
	case failed > 0 && failed == len(r.Verdicts):
		verdicts := slices.Sorted(maps.Values(r.Verdicts))
		said := ""
		if len(r.Reasons) > 0 {
			said = fmt.Sprintf("; they say: %q", slices.Compact(slices.Sorted(maps.Values(r.Reasons))))
		}
		return fmt.Sprintf("every verifier attested a failure (%v) though this node committed in time: check the backend's results (`poai bench`) and the clock (`poai doctor`)%s", slices.Compact(verdicts), said)
	case failed > 0:
		return fmt.Sprintf("%d of %d verifiers attested a failure: a minority; the others passed it", failed, len(r.Verdicts))
	}
	return ""
}

// workloadName is the config name of workload w (ParseWorkload's
// inverse).
func workloadName(w pb.Workload) string {
	switch w {
	case pb.Workload_WORKLOAD_GEMM_INT8:
		return "int8"
	case pb.Workload_WORKLOAD_GEMM_BF16:
		return "bf16"
	case pb.Workload_WORKLOAD_VRAM:
		return "vram"
	case pb.Workload_WORKLOAD_LLM:
		return "llm"
	}
	return w.String()
}

// Proofs returns this node's latest challenges as a target (at most
// maxProofRecords), most recent first: ProofRecord.
func (n *Node) Proofs() []ProofRecord {
	var out []ProofRecord
	if !n.ev.snapshot(func() { out = n.tk.proofs.list() }) {
		return nil
	}
	return out
}
