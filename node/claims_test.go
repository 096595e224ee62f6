package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/challenge/pb"
	"github.com/poai-network/poai/gpu"
)

// TestUnplannableVRAMFlagged: a claim whose int8 proof plans but whose VRAM
// proof cannot (its deadline would pass the validators' 10-minute limit)
// is flagged unverifiable — counted, logged and scored — rather than
// challenged on int8 alone with its memory never proven. A claim that
// plans every workload it must prove is not flagged.
func TestUnplannableVRAMFlagged(t *testing.T) {
	var logs bytes.Buffer
	n, err := New(t.TempDir(), testConfig(), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	claim := func(c *pb.DeviceClaim) decoded {
		_, id, err := challenge.MessageCID(c)
		if err != nil {
			t.Fatal(err)
		}
		return decoded{msg: c, cid: id}
	}
	big, small := peer.ID("big"), peer.ID("small")
	// A CPU's int8 and bf16 rates with a terabyte of memory hashed at a
	// CPU's rate: days of VRAM proof.
	bigClaim := &pb.DeviceClaim{Model: "devnet CPU", Int8Tops: 0.001, Bf16Tflops: 0.001, HashGhps: 0.001, VramBytes: 1 << 40}
	if _, err := n.planner.Plan(bigClaim, pb.Workload_WORKLOAD_GEMM_INT8); err != nil {
		t.Fatalf("the int8 proof should plan: %v", err)
	}
	at := time.Now()
	n.claims.onClaim(big, claim(bigClaim), at)
	n.claims.onClaim(small, claim(&pb.DeviceClaim{Model: "devnet CPU", Int8Tops: 0.001, Bf16Tflops: 0.001, HashGhps: 0.001, VramBytes: 1 << 20}), at)
	if !slices.Contains(n.claims.peers[big].flags, FlagUnverifiable) || n.app.score(big) != UnverifiableScore {
		t.Errorf("unplannable VRAM claim: flags %q, score %v", n.claims.peers[big].flags, n.app.score(big))
	}
	if got := testutil.ToFloat64(n.metrics.flagged.WithLabelValues("unverifiable")); got != 1 {
		t.Errorf("poai_claims_flagged_total{reason=unverifiable} = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "WORKLOAD_VRAM") {
		t.Errorf("the log does not say which workload failed:\n%s", logs.String())
	}
	if len(n.claims.peers[small].flags) != 0 || n.app.score(small) != 0 {
		t.Errorf("a plannable claim: flags %q, score %v", n.claims.peers[small].flags, n.app.score(small))
	}
}

// TestManyDevicesFlagged: a catalog claim of twelve devices is held to
// twelve devices (challenge.Planner.RatesFor), more than any challenge
// within the limits can test, so it is flagged unverifiable — scored below
// the graylist — besides the count flag (challenge.CrossCheck); a claim of two
// is challenged as two devices and carries the count flag alone.
func TestManyDevicesFlagged(t *testing.T) {
	cfg := testConfig()
	cfg.Challenge.EpochLength, cfg.Challenge.TargetDuration = Duration(30*time.Second), Duration(2*time.Second)
	n, err := New(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		count        uint32
		unverifiable bool
	}{{12, true}, {2, false}} {
		c := &pb.DeviceClaim{Model: "NVIDIA H100 80GB HBM3", Count: tc.count, Int8Tops: 1, HashGhps: 1}
		_, id, _ := challenge.MessageCID(c)
		p := peer.ID(fmt.Sprint("many", tc.count))
		n.claims.onClaim(p, decoded{msg: c, cid: id}, time.Now())
		flags := n.claims.peers[p].flags
		if len(flags) == 0 || !strings.Contains(flags[0], fmt.Sprintf("claims %d H100 SXM devices", tc.count)) {
			t.Errorf("%d devices: flags %q, want the device count flagged", tc.count, flags)
		}
		if got := slices.Contains(flags, FlagUnverifiable); got != tc.unverifiable || (n.app.score(p) == UnverifiableScore) != tc.unverifiable {
			t.Errorf("%d devices: flags %q, score %v; want unverifiable %v", tc.count, flags, n.app.score(p), tc.unverifiable)
		}
	}
	if got := testutil.ToFloat64(n.metrics.flagged.WithLabelValues("device_report")); got != 2 {
		t.Errorf("poai_claims_flagged_total{reason=device_report} = %v, want 2", got)
	}
}

// TestCalibrationRecorded: the first calibration measures and records the
// device; the next reuses the record exactly; --recalibrate measures again
// and logs the previous figures beside the new; a record of another
// device, or a damaged one, is measured over.
func TestCalibrationRecorded(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	path := filepath.Join(t.TempDir(), CalibrationFile)
	ch := DefaultConfig().Challenge
	ch.K, ch.M, ch.BF16K, ch.BF16M = 64, 64, 64, 64
	cpu := gpu.NewCPU()
	first, err := calibrate(t.Context(), path, cpu, ch, false, log)
	if err != nil {
		t.Fatal(err)
	}
	if first.Int8TOPS <= 0 || first.LLMInt8TOPS <= 0 {
		t.Fatalf("measured %+v", first)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := calibrate(t.Context(), path, cpu, ch, false, log)
	if err != nil {
		t.Fatal(err)
	}
	if again != first || !strings.Contains(logs.String(), "device calibration from record") {
		t.Fatalf("second start: %+v, want the record %+v", again, first)
	}
	if after, _ := os.ReadFile(path); string(after) != string(b) {
		t.Fatal("the record was rewritten without a new measurement")
	}
	if _, err := calibrate(t.Context(), path, cpu, ch, true, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "previous_int8_tops=") {
		t.Fatalf("a recalibration does not show the previous figures:\n%s", logs.String())
	}
	other := ch
	other.K = 128
	if id := deviceIdentity(cpu, other); id == deviceIdentity(cpu, ch) {
		t.Fatal("another measured shape, the same device identity")
	}
	if err := os.WriteFile(path, []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := calibrate(t.Context(), path, cpu, ch, false, log); err != nil || !strings.Contains(logs.String(), "calibration record unreadable") {
		t.Fatalf("a damaged record: %v", err)
	}
	var c Calibration
	if b, _ := os.ReadFile(path); json.Unmarshal(b, &c) != nil || c.Device != deviceIdentity(cpu, ch) {
		t.Fatalf("the damaged record was not replaced: %s", b)
	}
}
