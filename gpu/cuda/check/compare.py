#!/usr/bin/env python3
"""Sets `poai bench --backend cuda --json` beside cublas_ref.py's figures
and prints the ratios the CUDA backend is judged by."""
import json
import sys

ref = json.load(open(sys.argv[1]))
ours = json.load(open(sys.argv[2]))
INT8_PEAK = 1979.0  # H100/H200 SXM dense int8 TOPS (datasheet, sparse halved)

print(f"device: {ours['device']['Name']} (reference run: {ref['device']}, torch {ref['torch']})")
refs = {(g["type"], g["shape"]): g for g in ref["gemm"] if "tops" in g}
print(f"{'type':5} {'shape':18} {'path':9} {'TOPS':>8} {'cuBLAS':>8} {'ratio':>7} {'of int8 peak':>12} {'workload':>9}")
for g in ours["gemm"]:
    r = refs.get((g["type"], g["shape"]))
    rt = r["tops"] if r else float("nan")
    peak = f"{g['tops'] / INT8_PEAK:12.3f}" if g["type"] == "int8" else " " * 12
    wl = f"{g.get('workload_tops', 0):9.1f}" if g.get("workload_tops") else " " * 9
    print(f"{g['type']:5} {g['shape']:18} {g['path']:9} {g['tops']:8.1f} {rt:8.1f} {g['tops'] / rt:7.3f} {peak} {wl}")
print(f"copy: poai {ours['copy_gbps']:.0f} GB/s, torch {ref['copy_gbps']:.0f} GB/s")
v = ours.get("vram")
if v:
    print(f"VRAM proof: {v['params']}, {v['bytes'] / 2**30:.1f} GiB = {100 * v['of_free']:.1f}% of free; fill {v['fill_ms']:.0f} ms, "
          f"lanes {v['lanes_ms']:.0f} ms; {v['g_hashes_per_s']:.1f} G compressions/s; fill-and-read {v['fill_and_read_gbps']:.1f} GB/s "
          f"= {v['fill_and_read_gbps'] / ref['copy_gbps']:.4f} of the copy bandwidth")
for c in ours.get("catalog", []):
    print(f"catalog challenge {c['model']} ({c['prover']}): {c['shape']}, deadline {c['deadline_ms']:.0f} ms, "
          f"commitment at {c['commit_ms']:.0f} ms -> {'IN TIME' if c['in_time'] else 'MISSED'}; "
          f"{c['achieved_tops']:.0f} TOPS; open {c['open_ms']:.0f} ms; CPU verify {c['verify_ms']:.0f} ms: {c['verdict']}")
