package challenge_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// A challenger sizes a workload, the target proves it, and a verifier
// recomputes the opened rows.
func Example() {
	newID := func() peer.ID {
		_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPublicKey(pub)
		return id
	}
	challenger, target := newID(), newID()
	nonce := make([]byte, 32)
	rand.Read(nonce)
	openings := challenge.OpeningsFor(0.9, 0.001)
	secret := make([]byte, 32) // the challenger's, revealed after the commitment
	rand.Read(secret)
	ch := &pb.Challenge{
		Version: 1, Challenger: []byte(challenger), Target: []byte(target), Nonce: nonce,
		Workload: pb.Workload_WORKLOAD_GEMM_INT8, N: 128, K: 64, M: 64,
		Openings: uint32(openings), DeadlineMs: 1000, IssuedUnixMs: time.Now().UnixMilli(),
		RevealHash: challenge.RevealHash(secret),
	}
	_, chCID, _ := challenge.MessageCID(ch)

	cpu := gpu.NewCPU()
	committed, err := challenge.Run(context.Background(), cpu, ch, chCID, target) // publish committed.Commitment
	if err != nil {
		panic(err)
	}
	op, err := committed.Open(context.Background(), ch, secret) // once the challenger reveals the secret
	if err != nil {
		panic(err)
	}
	res, err := challenge.Verify(context.Background(), cpu, ch, chCID, committed.Commitment, committed.CommitmentCID, op, secret)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(op.Rows), "rows opened:", res.Verdict, "accuracy", res.Accuracy)
	// Output: 66 rows opened: VERDICT_PASS accuracy 1
}
