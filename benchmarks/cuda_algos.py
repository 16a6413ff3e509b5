"""Each CUDA kernel of the extension, side by side on the RepLKNet-31B stage shapes (GPU only).

    python benchmarks/cuda_algos.py [--batch 64] [--json out.json]

For every shape and dtype it times every kernel the extension can be told to use (the `algo`
argument of torch.ops.replk_ops_C.fwd and bwd_weight, as the extension's algo_table lists them) in
one run, checks each against the
float64 reference on the first channels, and prints milliseconds, the forward's speedup over fp32
`direct`, and the nominal rate as a share of the datasheet peak (FP32 FMA for fp32, dense tensor
cores for fp16/bf16).
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

import replk_ops  # noqa: F401  (loads the extension)
from replk_ops.bench.hardware import compute_peak, peaks_for
from replk_ops.bench.shapes import preset
from replk_ops.bench.timing import time_cuda

TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 4e-2}


def _weight_grad64(x, dy, k, pad):
    """float64 weight gradient of the depthwise conv over x's channels."""
    channels = x.shape[1]
    weight = torch.zeros(channels, 1, k, k, dtype=torch.float64, device=x.device, requires_grad=True)
    F.conv2d(x.double(), weight, padding=pad, groups=channels).backward(dy.double())
    return weight.grad


def table_algos(pass_: str, dtype: torch.dtype):
    """The pass's algos that take ``dtype``, from the extension's own table; fp32 ``direct`` first
    (the forward's speedups are against it)."""
    rows = json.loads(torch.ops.replk_ops_C.algo_table())
    names = [r["algo"] for r in rows if r["pass"] == pass_ and str(dtype)[6:] in r["dtypes"]]
    return sorted(names, key=lambda name: name != "direct") if dtype == torch.float32 else names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--budget-ms", type=float, default=50.0)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    device = torch.device("cuda")
    peaks = peaks_for(device)
    ops = torch.ops.replk_ops_C
    rows = []
    print(f"{torch.cuda.get_device_name()}  peaks: fp32 {peaks.fma_tflops} TFLOP/s, tensor {peaks.tensor_tflops}")
    stages = sorted({(s.c, s.h, s.kh) for s in preset("replknet31b", "cuda")})
    for c, h, k in stages:
        n = args.batch
        pad = k // 2
        nominal = 2.0 * n * c * h * h * k * k
        fp32_ms = None
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            x = torch.randn(n, c, h, h, device=device, dtype=dtype)
            w = (torch.randn(c, 1, k, k, device=device) / k).to(dtype)
            ref = F.conv2d(x[:, :8].double(), w[:8].double(), padding=pad, groups=8)
            for algo in table_algos("fwd", dtype):
                try:
                    y = ops.fwd(x, w, None, pad, pad, algo)
                except RuntimeError as error:  # a kernel that does not take this shape says so
                    print(f"  {algo}: {str(error).splitlines()[0]}")
                    continue
                err = ((y[:, :8].double() - ref).abs().max() / ref.abs().max()).item()
                ms = time_cuda(lambda: ops.fwd(x, w, None, pad, pad, algo), args.budget_ms)[0]
                if dtype == torch.float32 and algo == "direct":
                    fp32_ms = ms
                peak = compute_peak(peaks, dtype)
                row = dict(shape=f"{n}x{c}x{h}x{h} k{k}", dtype=str(dtype)[6:], algo=algo, ms=ms,
                           rel_err=err, ok=err <= TOLERANCE[dtype], pct_of_peak=100 * nominal / (ms * 1e-3) / (peak * 1e12),
                           vs_fp32_direct=(fp32_ms / ms) if fp32_ms else None)
                rows.append(row)
                print(f"{row['shape']:>22} {row['dtype']:>9} {algo:>15} {ms:9.3f} ms  "
                      f"{row['pct_of_peak']:5.1f}% of peak  x{row['vs_fp32_direct'] or 0:5.2f} vs fp32 direct  "
                      f"err {err:.1e}{'' if row['ok'] else '  WRONG'}")
            # the weight gradient's kernels, checked on the first channels like the forward's
            dy = torch.randn_like(x)
            ref_dw = _weight_grad64(x[:, :8], dy[:, :8], k, pad)
            for algo in table_algos("bwd_weight", dtype):
                dw = ops.bwd_weight(dy, x, k, k, pad, pad, False, algo)[0]
                err = ((dw[:8].double() - ref_dw).abs().max() / ref_dw.abs().max()).item()
                ms = time_cuda(lambda: ops.bwd_weight(dy, x, k, k, pad, pad, False, algo), args.budget_ms)[0]
                peak = compute_peak(peaks, dtype)
                row = dict(shape=f"{n}x{c}x{h}x{h} k{k}", dtype=str(dtype)[6:], algo=f"bwd_weight {algo}", ms=ms,
                           rel_err=err, ok=err <= TOLERANCE[dtype],
                           pct_of_peak=100 * nominal / (ms * 1e-3) / (peak * 1e12), vs_fp32_direct=None)
                rows.append(row)
                print(f"{row['shape']:>22} {row['dtype']:>9} {row['algo']:>17} {ms:9.3f} ms  "
                      f"{row['pct_of_peak']:5.1f}% of peak  err {err:.1e}{'' if row['ok'] else '  WRONG'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), batch=args.batch, rows=rows), f, indent=1)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
