package node

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu/llm"
)

// ExportedOutput is one line of the outputs file ([challenge]
// export_outputs, --export-outputs): an llm answer this node verified as
// passing, with what produced it. With the seeded model the tokens are
// noise; they are the synthetic data the proof work made, kept rather
// than thrown away.
type ExportedOutput struct {
	// ChallengeCID is the challenge's CID (string form).
	ChallengeCID string `json:"challenge_cid"`
	// Target is the prover's peer ID.
	Target string `json:"target"`
	Epoch  uint64 `json:"epoch"`
	// ModelCID names the model (challenge.LLMModelCID): its dimensions
	// and weight seed.
	ModelCID string `json:"model_cid"`
	// Prompt is the prompt's tokens (llm.PromptTokens of the challenge's
	// seed); Tokens the T tokens the prover decoded.
	Prompt []int    `json:"prompt"`
	Tokens []uint32 `json:"tokens"`
}

// outputExport appends ExportedOutput lines to a file, one per verified
// llm answer. It is safe for concurrent use; a write error is logged by
// the caller and the file left as it is.
type outputExport struct {
	mu sync.Mutex
	f  *os.File
}

// openOutputExport opens path for appending (creating it 0600), or returns
// nil when path is empty.
func openOutputExport(path string) (*outputExport, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("export outputs: %w", err)
	}
	return &outputExport{f: f}, nil
}

// add writes the line of challenge ch (CID chCID) answered by com, when ch
// is an llm challenge.
func (e *outputExport) add(ch *pb.Challenge, chCID string, com *pb.Commitment) error {
	if e == nil || ch.GetWorkload() != pb.Workload_WORKLOAD_LLM {
		return nil
	}
	cfg, err := challenge.LLMConfigOf(ch)
	if err != nil {
		return err
	}
	model, err := challenge.LLMModelCID(ch)
	if err != nil {
		return err
	}
	b, err := json.Marshal(ExportedOutput{ChallengeCID: chCID, Target: peer.ID(ch.GetTarget()).String(), Epoch: ch.GetEpoch(),
		ModelCID: model.String(), Prompt: llm.PromptTokens(cfg, challenge.Seed(ch)), Tokens: com.GetTokens()})
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err = e.f.Write(append(b, '\n'))
	return err
}

// Close closes the file.
func (e *outputExport) Close() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.f.Close()
}
