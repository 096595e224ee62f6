#!/usr/bin/env python3
"""cuBLAS and copy-bandwidth reference figures for gpu-check.sh.

Times, through PyTorch on GPU 0, the same shapes `poai bench --backend cuda`
times: bf16 GEMM (fp32 accumulate, cuBLAS), int8 GEMM with int32 output
(torch._int_mm), and a device-to-device copy. Prints one JSON object.
Each figure is the mean of `reps` runs after 3 warm-ups, timed with CUDA
events.
"""
import json
import sys

import torch


def timed(fn, reps=10):
    for _ in range(3):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / reps  # ms


def shapes(arg):
    return [tuple(int(d) for d in s.split("x")) for s in arg.split(",") if s]


def main():
    int8s = shapes(sys.argv[1] if len(sys.argv) > 1 else "8192x8192x8192,16384x16384x16384")
    bf16s = shapes(sys.argv[2] if len(sys.argv) > 2 else "8192x4096x4096,8192x8192x8192")
    copy_mib = int(sys.argv[3]) if len(sys.argv) > 3 else 8192
    dev = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "gemm": []}
    for n, k, m in bf16s:
        a = torch.randn(n, k, device=dev, dtype=torch.bfloat16)
        b = torch.randn(k, m, device=dev, dtype=torch.bfloat16)
        ms = timed(lambda: torch.matmul(a, b))
        out["gemm"].append({"type": "bf16", "path": "cublas (torch.matmul)", "shape": f"{n}x{k}x{m}", "ms": ms, "tops": 2 * n * k * m / ms / 1e9})
        del a, b
    for n, k, m in int8s:
        a = torch.randint(-128, 127, (n, k), device=dev, dtype=torch.int8)
        b = torch.randint(-128, 127, (k, m), device=dev, dtype=torch.int8)
        try:
            ms = timed(lambda: torch._int_mm(a, b))
            out["gemm"].append({"type": "int8", "path": "cublas (torch._int_mm)", "shape": f"{n}x{k}x{m}", "ms": ms, "tops": 2 * n * k * m / ms / 1e9})
        except RuntimeError as e:  # shape not taken by _int_mm
            out["gemm"].append({"type": "int8", "path": "torch._int_mm", "shape": f"{n}x{k}x{m}", "error": str(e)[:200]})
        del a, b
    n = copy_mib << 20
    src = torch.empty(n, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src))
    out["copy_gbps"] = 2 * n / ms / 1e6
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
