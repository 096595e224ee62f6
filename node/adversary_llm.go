package node

import (
	"context"

	"github.com/ipfs/go-cid"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu/llm"
	"github.com/poai-network/poai/gpu/llm/llmcheat"
)

// The llm workload's labelled adversaries (issue 20): each answers an llm
// challenge with a cheating forward pass (gpu/llm/llmcheat) committed like
// an honest one, and every other workload honestly. docs/soundness.md
// gives the probability that one challenge catches each.

// Parameters of the llm adversaries.
const (
	// CheapAttentionWindow is how many of the latest positions
	// RoleCheapAttention attends to.
	CheapAttentionWindow = 8
)

// llmCheatFor returns the cheating forward pass of an llm adversary role
// for a task of cfg, and false for any other role.
func llmCheatFor(r Role, cfg llm.Config) (llmcheat.Cheat, bool) {
	switch r {
	case RoleLazyLLM:
		return llmcheat.Cheat{Layers: cfg.Layers / 2}, true
	case RoleCheapAttention:
		return llmcheat.Cheat{Layers: cfg.Layers, Window: CheapAttentionWindow}, true
	case RoleShortDecode:
		return llmcheat.Cheat{Layers: cfg.Layers, StopAfter: max(cfg.Decode/2, 1)}, true
	case RoleBatchedGuess:
		// The first token is computed; the rest are guessed as that token
		// repeated, and the whole sequence runs as one batched prefill.
		first := -1
		return llmcheat.Cheat{Layers: cfg.Layers, Guess: func(i, computed int) int {
			if i == 0 {
				first = computed
			}
			return first
		}}, true
	}
	return llmcheat.Cheat{}, false
}

// llmCheatCompute (adversary) answers llm challenges with its role's
// cheating forward pass and every other challenge with honest.
func llmCheatCompute(n *Node, honest computeFunc) computeFunc {
	return func(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
		if ch.GetWorkload() != pb.Workload_WORKLOAD_LLM {
			return honest(ctx, ch, chCID)
		}
		w, prompt, err := challenge.LLMTask(ch)
		if err != nil {
			return nil, err
		}
		c, ok := llmCheatFor(n.role, w.Config)
		if !ok {
			return honest(ctx, ch, chCID)
		}
		tr, tokens, _ := c.Forward(w, prompt)
		return challenge.CommitLLM(chCID, n.id, w.Config, tr, tokens)
	}
}

// replayLLMCompute (adversary, RoleReplayLLM) answers every llm challenge
// of a task shape with the trace and tokens of its first one, computed
// honestly once, and every other challenge with honest. Its memory is
// the prover goroutine's alone.
func replayLLMCompute(n *Node, honest computeFunc) computeFunc {
	type answer struct {
		tr     *llm.Trace
		tokens []int
	}
	seen := map[llm.Config]answer{}
	return func(ctx context.Context, ch *pb.Challenge, chCID cid.Cid) (*challenge.Committed, error) {
		if ch.GetWorkload() != pb.Workload_WORKLOAD_LLM {
			return honest(ctx, ch, chCID)
		}
		w, prompt, err := challenge.LLMTask(ch)
		if err != nil {
			return nil, err
		}
		old, ok := seen[w.Config]
		if !ok {
			res, tr, err := llm.RunTrace(ctx, w, prompt)
			if err != nil {
				return nil, err
			}
			old = answer{tr, res.Tokens}
			if len(seen) < 16 {
				seen[w.Config] = old
			}
		}
		return challenge.CommitLLM(chCID, n.id, w.Config, old.tr, old.tokens)
	}
}
