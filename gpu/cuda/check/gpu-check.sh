#!/usr/bin/env bash
# gpu-check.sh: the CUDA backend's checks and figures, in one go on a GPU
# machine (made for the H200 device machine; fits in 5 minutes there).
#
# Build on the Go machine, then run on the GPU machine from the repo root:
#   make gpu-check-bins            # .devbin/{poai,cuda.test,nvml.test,challenge.test}.gz
#   bash gpu/cuda/check/gpu-check.sh .devbin
#
# It runs: the CUDA tests (GPU results equal the golden vectors and the CPU
# backend bit for bit in int8, within tolerance in bf16, VRAM bit for bit);
# the NVML report; cuBLAS (PyTorch) and a device-to-device copy on the same
# shapes; `poai bench --backend cuda` with the full-size H200 challenge,
# honest and half-speed; the ratios; and a short devnet whose node 0 proves
# on the GPU. Logs and JSON go to $OUT (or /tmp/gpu-check).
#
# Every step runs even when an earlier one failed; the script's exit status
# is the worst (highest) status of its steps, 0 only when every one passed,
# and the failed steps are listed at the end.
set -uo pipefail
BIN=${1:-.devbin}
OUT=${OUT:-/tmp/gpu-check}
worst=0
failed=()
# note STEP STATUS: print a step's exit status and keep the worst.
note() {
  echo "exit $2"
  if [ "$2" -ne 0 ]; then
    failed+=("$1 (exit $2)")
    [ "$2" -gt "$worst" ] && worst=$2
  fi
  return 0
}
mkdir -p "$OUT" "$BIN/x"
unpacked=0
for f in "$BIN"/*.gz; do
  [ -e "$f" ] || break
  gunzip -c "$f" > "$BIN/x/$(basename "$f" .gz)" && chmod +x "$BIN/x/$(basename "$f" .gz)" || note "unpack $f" 1
  unpacked=$((unpacked + 1))
done
[ "$unpacked" -gt 0 ] || { echo "no $BIN/*.gz binaries (make gpu-check-bins)"; note "unpack" 1; }
X=$(cd "$BIN/x" && pwd)
# cuBLASLt for the GEMMs: the toolkit's, else PyTorch's wheel.
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null | sed 's|$|/cu13/lib|;p;s|/cu13/lib|/cublas/lib|'); do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
INT8=${INT8_SHAPES:-8192x8192x8192,16384x16384x16384,16384x65536x8192}
BF16=${BF16_SHAPES:-8192x4096x4096,8192x8192x8192,16384x16384x16384}

echo "== device"; nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.max.sm,power.limit,driver_version --format=csv
note "device (nvidia-smi)" $?
echo "== CUDA tests"
(cd gpu/cuda && POAI_REQUIRE_GPU=1 timeout 180 "$X/cuda.test" -test.v -test.timeout 170s) > "$OUT/cuda-tests.log" 2>&1
note "CUDA tests" $?; grep -E '^(--- |ok|FAIL|PASS)|cuda_test.go' "$OUT/cuda-tests.log" | cut -c1-300
echo "== protocol on CUDA (tolerance, golden roots, proofs a CPU verifier accepts)"
(cd challenge && POAI_REQUIRE_GPU=1 timeout 120 "$X/challenge.test" -test.v -test.run '^TestCUDA' -test.timeout 110s) > "$OUT/challenge-cuda.log" 2>&1
note "protocol on CUDA" $?; grep -E '^(--- |ok|FAIL|PASS)|cuda_test.go' "$OUT/challenge-cuda.log" | cut -c1-300
echo "== NVML"; timeout 30 "$X/nvml.test" -test.v -test.run Reports 2>&1 | grep -E 'nvml_test|^(--- |ok|FAIL)' | cut -c1-400
note "NVML" "${PIPESTATUS[0]}"
echo "== cuBLAS reference (PyTorch)"
PYTHONUNBUFFERED=1 timeout 150 python3 gpu/cuda/check/cublas_ref.py "$INT8" "$BF16" 8192 > "$OUT/ref.json" 2> "$OUT/ref.err"; note "cuBLAS reference" $?; tail -3 "$OUT/ref.err"
echo "== poai bench --backend cuda"
timeout 240 "$X/poai" bench --backend cuda --json --reps 5 --gemm-int8 "$INT8" --gemm-bf16 "$BF16" --vram-fraction 0.9 --catalog "NVIDIA H200" > "$OUT/bench.json" 2> "$OUT/bench.err"
note "poai bench" $?; tail -5 "$OUT/bench.err"
echo "== ratios"; python3 gpu/cuda/check/compare.py "$OUT/ref.json" "$OUT/bench.json"
note "ratios" $?
echo "== devnet with node 0 on the GPU"
timeout 100 "$X/poai" devnet --nodes 5 --adversaries slow=1,lazy=1 --duration 45s --json > "$OUT/devnet.json" 2> "$OUT/devnet.err"
note "devnet" $?; tail -3 "$OUT/devnet.err"
python3 - "$OUT/devnet.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"gpu={r.get('gpu')} separated={r['separated']} honest_min={r['honest_min_score']:.3f} adversary_max={r['adversary_max_score']:.3f} honest_pass={r['honest_pass_rate']:.2f}")
for p in r["peers"]:
    print(f"  {p['role']:8} {p['backend']:5} challenges={p['challenges_received']} passed={p['passed']} p50={p['latency_p50_ms']:.0f}ms p99={p['latency_p99_ms']:.0f}ms score={p['final_score']:.3f}")
PY
note "devnet report" $?
echo "== result"
if [ "$worst" -eq 0 ]; then
  echo "every step passed"
else
  printf 'FAILED: %s\n' "${failed[@]}"
fi
exit "$worst"
