package p2p_test

// This test sits in package p2p_test so that it may run the challenge
// package's validators, which package p2p must not import.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	pubsub_pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/llm"
	"github.com/poai-network/poai/p2p"
)

var update = flag.Bool("update", false, "rewrite testdata/protocol/vectors.json")

const vectorsPath = "../testdata/protocol/vectors.json"

// vectorFile is testdata/protocol/vectors.json: gossip messages as a peer
// receives them, with what a receiver computes from them and what it does.
type vectorFile struct {
	Comment string `json:"comment"`
	// Validation runs at NowUnixMs on an epoch clock of EpochLengthMs
	// epochs from EpochGenesisUnixMs, with challenge.DefaultLimits and a
	// fresh replay cache per vector.
	NowUnixMs          int64       `json:"now_unix_ms"`
	EpochGenesisUnixMs int64       `json:"epoch_genesis_unix_ms"`
	EpochLengthMs      int64       `json:"epoch_length_ms"`
	Keys               []vectorKey `json:"keys"`
	Vectors            []vector    `json:"vectors"`
}

// vectorKey is an Ed25519 identity: its 32-byte seed (RFC 8032 private
// key) and peer ID.
type vectorKey struct {
	Name    string `json:"name"`
	SeedHex string `json:"seed_hex"`
	PeerID  string `json:"peer_id"`
}

type vector struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Topic       string `json:"topic"`
	// Kind is the poai.v1 message data decodes as.
	Kind     string `json:"kind"`
	From     string `json:"from"`
	FromHex  string `json:"from_hex"`
	SeqnoHex string `json:"seqno_hex"`
	DataHex  string `json:"data_hex"`
	// PayloadCID is the content CID of data (protocol.md §3.2).
	PayloadCID string `json:"payload_cid"`
	// SignedBytesHex is what the envelope signature covers and the
	// message ID hashes (protocol.md §4.1, §4.3).
	SignedBytesHex string `json:"signed_bytes_hex"`
	SignatureHex   string `json:"signature_hex"`
	MessageID      string `json:"message_id"`
	MessageIDHex   string `json:"message_id_hex"`
	// Expect is accept, reject or ignore (protocol.md §7); Reason is
	// invalid_signature for a bad envelope signature, else
	// challenge.Reason of the validator's error.
	Expect string `json:"expect"`
	Reason string `json:"reason,omitempty"`
}

// TestVectors recomputes every vector of testdata/protocol/vectors.json:
// peer IDs from seeds, payload CID, signed bytes, message ID, envelope
// signature and the validators' outcome. With -update it writes them
// anew from fixed keys and times.
func TestVectors(t *testing.T) {
	if *update {
		f := generateVectors(t)
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (go test ./p2p -run TestVectors -update writes it)", err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, k := range f.Keys {
		if _, id := keyFromSeed(t, mustHex(t, k.SeedHex)); id.String() != k.PeerID {
			t.Errorf("key %s: seed gives peer ID %s, file says %s", k.Name, id, k.PeerID)
		}
	}
	now := time.UnixMilli(f.NowUnixMs)
	clock := challenge.EpochClock{Genesis: time.UnixMilli(f.EpochGenesisUnixMs), Length: time.Duration(f.EpochLengthMs) * time.Millisecond}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	bySigned := map[string]string{}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) { checkVector(t, v, clock, now) })
		if id, ok := bySigned[v.SignedBytesHex]; ok && id != v.MessageID {
			t.Errorf("%s: same signed bytes as an earlier vector, another message ID", v.Name)
		}
		bySigned[v.SignedBytesHex] = v.MessageID
	}
	if len(bySigned) != len(uniqueIDs(f.Vectors)) {
		t.Error("two vectors with different signed bytes share a message ID")
	}
}

func uniqueIDs(vs []vector) map[string]bool {
	ids := map[string]bool{}
	for _, v := range vs {
		ids[v.MessageID] = true
	}
	return ids
}

func checkVector(t *testing.T, v vector, clock challenge.EpochClock, now time.Time) {
	from, err := peer.Decode(v.From)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString([]byte(from)) != v.FromHex {
		t.Errorf("from_hex %s, peer ID %s is %x", v.FromHex, v.From, []byte(from))
	}
	data := mustHex(t, v.DataHex)
	m := &pubsub_pb.Message{From: []byte(from), Data: data, Seqno: mustHex(t, v.SeqnoHex), Topic: proto.String(v.Topic), Signature: mustHex(t, v.SignatureHex)}
	if c := challenge.CIDOf(data); c.String() != v.PayloadCID {
		t.Errorf("payload CID %s, file says %s", c, v.PayloadCID)
	}
	signed, err := p2p.SignedBytes(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(signed); got != v.SignedBytesHex {
		t.Errorf("signed bytes %s, file says %s", got, v.SignedBytesHex)
	}
	id := p2p.MessageID(m)
	if got := hex.EncodeToString([]byte(id)); got != v.MessageIDHex {
		t.Errorf("message ID %s, file says %s", got, v.MessageIDHex)
	}
	c, err := cid.Cast([]byte(id))
	if err != nil || c.String() != v.MessageID {
		t.Errorf("message ID CID %s (%v), file says %s", c, err, v.MessageID)
	}
	expect, reason := outcome(t, m, from, v.Topic, clock, now)
	if expect != v.Expect || reason != v.Reason {
		t.Errorf("outcome %s (%s), file says %s (%s)", expect, reason, v.Expect, v.Reason)
	}
}

// outcome is what a receiver does with m: gossipsub checks the envelope
// signature (StrictSign), then the topic's validator runs, its errors
// mapped as node.validatorFor maps them.
func outcome(t *testing.T, m *pubsub_pb.Message, from peer.ID, topic string, clock challenge.EpochClock, now time.Time) (string, string) {
	pub, err := from.ExtractPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := p2p.SignedBytes(m)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := pub.Verify(signed, m.GetSignature()); err != nil || !ok {
		return "reject", "invalid_signature"
	}
	val := challenge.NewValidator(challenge.DefaultLimits(), clock, 16)
	validate := map[string]func(peer.ID, []byte, time.Time) error{
		p2p.TopicClaims:      drop(val.Claim),
		p2p.TopicChallenges:  drop(val.Challenge),
		p2p.TopicCommitments: drop(val.Commitment),
		p2p.TopicReveals:     drop(val.Reveal),
		p2p.TopicOpenings:    drop(val.Opening),
		p2p.TopicAttestation: drop(val.Attestation),
		p2p.TopicRequests:    drop(val.ChallengeRequest),
	}[topic]
	if validate == nil {
		t.Fatalf("no validator for topic %s", topic)
	}
	switch err := validate(from, m.GetData(), now); {
	case err == nil:
		return "accept", ""
	case errors.Is(err, challenge.ErrReplayed) || errors.Is(err, challenge.ErrStale):
		return "ignore", challenge.Reason(err)
	default:
		return "reject", challenge.Reason(err)
	}
}

func drop[M any](f func(peer.ID, []byte, time.Time) (M, cid.Cid, error)) func(peer.ID, []byte, time.Time) error {
	return func(from peer.ID, data []byte, now time.Time) error {
		_, _, err := f(from, data, now)
		return err
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keyFromSeed(t *testing.T, seed []byte) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

// generateVectors builds the vectors from fixed keys (seeds
// SHA-256("poai/1/test-vector/key/" ‖ name)), a fixed time and the
// project's own constructors.
func generateVectors(t *testing.T) vectorFile {
	genesis := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := genesis.Add(60*time.Minute + 30*time.Second) // epoch 60
	clock := challenge.EpochClock{Genesis: genesis, Length: time.Minute}
	f := vectorFile{
		Comment: "poai wire protocol test vectors (docs/protocol.md §4.3, §7). Each vector is a gossipsub message as received: " +
			"from, seqno, topic, data and signature. message_id is CIDv1(raw 0x55, sha2-256(signed_bytes)); signed_bytes is " +
			"\"libp2p-pubsub:\" followed by the protobuf pubsub Message holding from, data, seqno and topic. " +
			"Check with: go test ./p2p -run TestVectors. Regenerate with: go test ./p2p -run TestVectors -update.",
		NowUnixMs: now.UnixMilli(), EpochGenesisUnixMs: genesis.UnixMilli(), EpochLengthMs: clock.Length.Milliseconds(),
	}
	keys := map[string]crypto.PrivKey{}
	ids := map[string]peer.ID{}
	for _, name := range []string{"alice", "bob", "carol", "mallory"} {
		seed := sha256.Sum256([]byte("poai/1/test-vector/key/" + name))
		keys[name], ids[name] = keyFromSeed(t, seed[:])
		f.Keys = append(f.Keys, vectorKey{Name: name, SeedHex: hex.EncodeToString(seed[:]), PeerID: ids[name].String()})
	}
	// add appends the message author publishes as its seq-th (a new
	// seqno when seq is 0), after edit.
	seqno := uint64(0)
	add := func(name, desc, topic, kind, author string, seq uint64, data []byte, edit func(*pubsub_pb.Message)) {
		if seq == 0 {
			seqno++
			seq = seqno
		}
		m := &pubsub_pb.Message{From: []byte(ids[author]), Data: data, Seqno: binary.BigEndian.AppendUint64(nil, seq), Topic: proto.String(topic)}
		signed, err := p2p.SignedBytes(m)
		if err != nil {
			t.Fatal(err)
		}
		if m.Signature, err = keys[author].Sign(signed); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(m)
		}
		c, err := p2p.MessageIDCID(m)
		if err != nil {
			t.Fatal(err)
		}
		signed, _ = p2p.SignedBytes(m)
		expect, reason := outcome(t, m, ids[author], topic, clock, now)
		f.Vectors = append(f.Vectors, vector{
			Name: name, Description: desc, Topic: topic, Kind: kind, From: ids[author].String(), FromHex: hex.EncodeToString(m.From),
			SeqnoHex: hex.EncodeToString(m.Seqno), DataHex: hex.EncodeToString(data), PayloadCID: challenge.CIDOf(data).String(),
			SignedBytesHex: hex.EncodeToString(signed), SignatureHex: hex.EncodeToString(m.Signature),
			MessageID: c.String(), MessageIDHex: hex.EncodeToString(c.Bytes()), Expect: expect, Reason: reason,
		})
	}

	nonce := sha256.Sum256([]byte("poai/1/test-vector/nonce"))
	secret := sha256.Sum256([]byte("poai/1/test-vector/secret"))
	ch := &pb.Challenge{
		Version: 1, Epoch: clock.At(now), Challenger: []byte(ids["alice"]), Target: []byte(ids["bob"]), Nonce: nonce[:],
		Workload: pb.Workload_WORKLOAD_GEMM_INT8, N: 128, K: 64, M: 64, Openings: uint32(challenge.OpeningsFor(0.9, 0.001)),
		DeadlineMs: 1000, IssuedUnixMs: now.UnixMilli(), RevealHash: challenge.RevealHash(secret[:]),
	}
	chBytes, chCID, err := challenge.MessageCID(ch)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := challenge.Run(context.Background(), gpu.NewCPU(), ch, chCID, ids["bob"])
	if err != nil {
		t.Fatal(err)
	}
	if err := committed.Sign(keys["bob"]); err != nil {
		t.Fatal(err)
	}
	comBytes, err := challenge.Marshal(committed.Commitment)
	if err != nil {
		t.Fatal(err)
	}
	att := &pb.Attestation{
		ChallengeCid: chCID.Bytes(), Target: []byte(ids["bob"]), Verifier: []byte(ids["carol"]), Epoch: clock.At(now),
		Verdict: pb.Verdict_VERDICT_PASS, LatencyMs: 420, DeadlineMs: 1000, DataAccuracy: 1, IssuedUnixMs: now.UnixMilli(),
	}
	attBytes, err := challenge.Marshal(att)
	if err != nil {
		t.Fatal(err)
	}

	add("challenge", "alice challenges bob (int8 GEMM 128x64x64)", p2p.TopicChallenges, "Challenge", "alice", 0, chBytes, nil)
	add("commitment", "bob's signed commitment to alice's challenge", p2p.TopicCommitments, "Commitment", "bob", 0, comBytes, nil)
	add("commitment_forwarded", "carol forwards bob's commitment: the same data under carol's envelope is another message ID, "+
		"and valid, since the commitment's own signature names its prover", p2p.TopicCommitments, "Commitment", "carol", 0, comBytes, nil)
	add("attestation", "carol attests that bob passed", p2p.TopicAttestation, "Attestation", "carol", 0, attBytes, nil)

	add("challenge_bad_envelope_signature", "the message of vector challenge with the last byte of its envelope signature "+
		"flipped: the same message ID (the ID does not cover the signature), but gossipsub drops the copy before the validator "+
		"runs and before it marks the ID seen", p2p.TopicChallenges, "Challenge", "alice", 1, chBytes, func(m *pubsub_pb.Message) { m.Signature[len(m.Signature)-1] ^= 1 })
	add("challenge_wrapped", "alice's challenge published by mallory under mallory's own valid envelope: the challenger "+
		"is not the signer; its message ID differs from alice's, so rejecting it does not make alice's copy a duplicate",
		p2p.TopicChallenges, "Challenge", "mallory", 0, chBytes, nil)
	bad := proto.CloneOf(committed.Commitment)
	bad.Signature[0] ^= 1
	badBytes, err := challenge.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	add("commitment_bad_signature", "bob's commitment with the first byte of its own (in-payload) signature flipped, "+
		"under a valid envelope of bob's", p2p.TopicCommitments, "Commitment", "bob", 0, badBytes, nil)
	// The same exchange 30 epochs earlier, replayed now: bob's commitment
	// names epoch 30, outside the window [60 − 25, 60 + 2] of 1-minute
	// epochs (challenge.Validator.EpochWindow).
	old := proto.CloneOf(ch)
	old.Epoch -= 30
	old.IssuedUnixMs -= (30 * time.Minute).Milliseconds()
	_, oldCID, err := challenge.MessageCID(old)
	if err != nil {
		t.Fatal(err)
	}
	oldCom, err := challenge.Run(context.Background(), gpu.NewCPU(), old, oldCID, ids["bob"])
	if err != nil {
		t.Fatal(err)
	}
	if err := oldCom.Sign(keys["bob"]); err != nil {
		t.Fatal(err)
	}
	oldBytes, err := challenge.Marshal(oldCom.Commitment)
	if err != nil {
		t.Fatal(err)
	}
	add("commitment_replayed_epoch", "bob's signed commitment to alice's challenge of epoch 30, replayed at epoch 60: "+
		"well formed and validly signed, but its epoch is outside the receiver's window, so it is ignored (no penalty) "+
		"and counted", p2p.TopicCommitments, "Commitment", "bob", 0, oldBytes, nil)
	add("attestation_explicit_zero", "carol's attestation with score_deviation (field 8) written as an explicit 0.0: "+
		"not the canonical encoding", p2p.TopicAttestation, "Attestation", "carol", 0,
		insertField(t, attBytes, 8, protowire.AppendFixed64(protowire.AppendTag(nil, 8, protowire.Fixed64Type), 0)), nil)
	add("attestation_reordered", "carol's attestation with its first two fields (challenge_cid, target) swapped: "+
		"not the canonical encoding", p2p.TopicAttestation, "Attestation", "carol", 0, swapFirstFields(t, attBytes), nil)

	// The llm workload: a small task of the devnet model (docs/llm-spec.md).
	llmTask := llm.DevnetConfig
	llmTask.Prompt, llmTask.Decode = 8, 2
	lch := &pb.Challenge{
		Version: 1, Epoch: clock.At(now), Challenger: []byte(ids["alice"]), Target: []byte(ids["bob"]), Nonce: nonce[:],
		Workload: pb.Workload_WORKLOAD_LLM, Openings: 8, DeadlineMs: 1000, IssuedUnixMs: now.UnixMilli(),
		RevealHash: challenge.RevealHash(secret[:]), Llm: challenge.LLMShapeOf(llmTask, 2, gpu.Seed{}),
	}
	challenge.SetLLMWeights(lch, genesis.Unix())
	lchBytes, lchCID, err := challenge.MessageCID(lch)
	if err != nil {
		t.Fatal(err)
	}
	lcom, err := challenge.Run(context.Background(), gpu.NewCPU(), lch, lchCID, ids["bob"])
	if err != nil {
		t.Fatal(err)
	}
	if err := lcom.Sign(keys["bob"]); err != nil {
		t.Fatal(err)
	}
	lcomBytes, err := challenge.Marshal(lcom.Commitment)
	if err != nil {
		t.Fatal(err)
	}
	add("llm_challenge", "alice challenges bob to the llm workload: the devnet model, an 8-token prompt, 2 tokens decoded, "+
		"8 stage checks and 2 links, with the weight seed of its epoch", p2p.TopicChallenges, "Challenge", "alice", 0, lchBytes, nil)
	add("llm_commitment", "bob's signed commitment to the llm challenge: the root over its leaves and the 2 tokens it decoded",
		p2p.TopicCommitments, "Commitment", "bob", 0, lcomBytes, nil)
	return f
}

// fields splits a protobuf encoding into its fields, each with its tag.
func fields(t *testing.T, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal(protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			t.Fatal(protowire.ParseError(m))
		}
		out = append(out, b[:n+m])
		b = b[n+m:]
	}
	return out
}

// insertField returns b with field (an encoded field numbered num) before
// the first field numbered above num.
func insertField(t *testing.T, b []byte, num protowire.Number, field []byte) []byte {
	var out []byte
	done := false
	for _, f := range fields(t, b) {
		if n, _, _ := protowire.ConsumeTag(f); n > num && !done {
			out, done = append(out, field...), true
		}
		out = append(out, f...)
	}
	if !done {
		out = append(out, field...)
	}
	return out
}

func swapFirstFields(t *testing.T, b []byte) []byte {
	fs := fields(t, b)
	fs[0], fs[1] = fs[1], fs[0]
	return bytes.Join(fs, nil)
}
