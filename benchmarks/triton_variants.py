"""The Triton forward kernel's variants side by side on RepLKNet-31B stages 1 and 2 (GPU only).

    python benchmarks/triton_variants.py [--batch 64]

Times the kernel itself (no autotuning) for: the rows of a tile (group rows: R consecutive output
rows of one image per GEMM row; batch rows: the same R rows of BM images, with aligned vector
loads where the strides allow), R (1 is the plain row-Toeplitz product, 4 shares each gathered
input tile among four kernel rows), the tile (BM, BN, warps), and for fp32 the two ways to fp32
accuracy: the 3xTF32 split on tensor cores against IEEE FMA. Then the bf16 weight gradient's
tuning candidates (group rows both ways, batch rows). Each variant is checked against the float64
reference before it is timed.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
import triton

from replk_ops.bench.hardware import compute_peak, peaks_for
from replk_ops.bench.timing import time_cuda
from replk_ops.triton_kernels import launch
from replk_ops.triton_kernels.kernels import dwconv_fwd_kernel

STAGES = [(128, 56, 31), (256, 28, 29)]
TILES = [(64, 32, 4), (128, 32, 8)]
BATCH_TILES = [(64, 16, 4), (64, 16, 8), (128, 16, 8)]
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 4e-2}


def variants(dtype):
    if dtype == torch.float32:
        return ([dict(R=1, IEEE=ieee, tile=tile, batch_rows=False) for ieee in (False, True) for tile in TILES[:1]]
                + [dict(R=1, IEEE=False, tile=tile, batch_rows=True) for tile in BATCH_TILES if tile[0] <= 64])
    return ([dict(R=r, IEEE=False, tile=tile, batch_rows=False) for r in (1, 4) for tile in TILES]
            + [dict(R=4, IEEE=False, tile=tile, batch_rows=True) for tile in BATCH_TILES])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--budget-ms", type=float, default=40.0)
    args = parser.parse_args(argv)
    peaks = peaks_for(torch.device("cuda"))
    failures = 0
    for c, hw, k in STAGES:
        n, pad = args.batch, k // 2
        nominal = 2.0 * n * c * hw * hw * k * k
        for dtype in (torch.bfloat16, torch.float32):
            x = torch.randn(n, c, hw, hw, device="cuda", dtype=dtype)
            w = (torch.randn(c, 1, k, k, device="cuda") / k).to(dtype)
            ref = F.conv2d(x[:, :8].double(), w[:8].double(), padding=pad, groups=8)
            y = torch.empty_like(x)
            for v in variants(dtype):
                (bm, bn, warps), r = v["tile"], v["R"]
                bk = triton.next_power_of_2(bn + k - 1)
                align = launch._aligned(bn, bk, k, launch.vector_width(x)) if v["batch_rows"] else 1
                meta = dict(BM=bm, BN=bn, BK=bk, BATCH_ROWS=v["batch_rows"], ALIGN=align)
                grid = launch.fwd_grid(n, c, hw, hw, r)(meta)

                def run():
                    dwconv_fwd_kernel[grid](x, w, w, y, n, hw, hw, hw, hw, k, k, pad, pad, *x.stride(), *y.stride(),
                                            0, HAS_BIAS=False, R=r, UPCAST=False, IEEE=v["IEEE"], num_warps=warps,
                                            **meta)

                run()
                err = ((y[:, :8].double() - ref).abs().max() / ref.abs().max()).item()
                ms = time_cuda(run, args.budget_ms)[0]
                pct = 100 * nominal / (ms * 1e-3) / (compute_peak(peaks, dtype) * 1e12)
                ok = err <= TOLERANCE[dtype]
                failures += not ok
                precision = "" if dtype != torch.float32 else ("ieee-fma" if v["IEEE"] else "3xtf32")
                rows = f"batch rows ALIGN={align}" if v["batch_rows"] else "group rows"
                print(f"{n}x{c}x{hw}x{hw} k{k} {str(dtype)[6:]:>8} {precision:>8} {rows:>20} R={r} BM={bm} BN={bn} "
                      f"warps={warps}: {ms:8.3f} ms  {pct:5.1f}% of peak  err {err:.1e}{'' if ok else '  WRONG'}")
        failures += weight_gradients(n, c, hw, k, peaks, args.budget_ms)
    return 1 if failures else 0


def weight_gradients(n, c, hw, k, peaks, budget_ms) -> int:
    """Each bf16 weight-gradient tuning candidate, untuned, checked on 8 channels; the number wrong."""
    import os

    dtype, pad = torch.bfloat16, k // 2
    x = torch.randn(n, c, hw, hw, device="cuda", dtype=dtype)
    dy = torch.randn(n, c, hw, hw, device="cuda", dtype=dtype)
    x8 = x[:, :8].double()
    w8 = torch.zeros(8, 1, k, k, device="cuda", dtype=torch.float64, requires_grad=True)
    F.conv2d(x8, w8, padding=pad, groups=8).backward(dy[:, :8].double())
    ref = w8.grad
    nominal = 2.0 * n * c * hw * hw * k * k
    bk = triton.next_power_of_2(32 + k - 1)
    width = min(launch.vector_width(x), launch.vector_width(dy))
    os.environ[launch.AUTOTUNE_ENV] = "0"
    wrong = 0
    for config in launch.prune_bwd_weight_configs(launch.bwd_weight_configs(), {"KW": k, "TUNE_CLASS": 2 * width + 1},
                                                  BN=32, BK=bk):
        variant = (config.kwargs, config.num_warps)
        launch.fixed_bwd_weight_variant = lambda *_: variant  # noqa: E731

        def run():
            return launch.bwd_weight(dy, x, k, k, pad, pad)

        err = ((run()[0][:8].double() - ref).abs().max() / ref.abs().max()).item()
        ms = time_cuda(run, budget_ms)[0]
        pct = 100 * nominal / (ms * 1e-3) / (compute_peak(peaks, dtype) * 1e12)
        ok = err <= TOLERANCE[dtype]
        wrong += not ok
        rows = "batch rows" if config.kwargs["BATCH_ROWS"] else "group rows"
        print(f"{n}x{c}x{hw}x{hw} k{k} bfloat16 weight gradient {rows:>10} transposed={config.kwargs['TRANSPOSED']!s:>5} "
              f"warps={config.num_warps}: {ms:8.3f} ms  {pct:5.1f}% of peak  err {err:.1e}{'' if ok else '  WRONG'}")
    del os.environ[launch.AUTOTUNE_ENV]
    return wrong


if __name__ == "__main__":
    raise SystemExit(main())
