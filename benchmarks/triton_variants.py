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

from replk_ops.bench.hardware import compute_peak, peaks_for
from replk_ops.bench.timing import time_cuda
from replk_ops.backends.triton.kernels import common, launch, tuning
from replk_ops.backends.triton.kernels.fwd import dwconv_fwd_kernel, fwd_grid

STAGES = [(128, 56, 31), (256, 28, 29)]
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 4e-2}


def variants(dtype):
    """(catalogue entry, R, IEEE) to time: bf16 group rows with R = 1 and 4, batch rows with R = 4;
    fp32 (R = 1) the tiles the tuner keeps for it (BM <= 64) with 3xTF32, and the first with IEEE
    FMA."""
    group = [v for v in tuning.FORWARD_VARIANTS if v.rows == tuning.GROUP_ROWS]
    batch = [v for v in tuning.FORWARD_VARIANTS if v.rows == tuning.BATCH_ROWS]
    if dtype == torch.float32:
        return ([(v, 1, False) for v in group + batch if v.bm <= 64] + [(group[0], 1, True)])
    return [(v, r, False) for r in (1, 4) for v in group] + [(v, 4, False) for v in batch]


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
            for v, r, ieee in variants(dtype):
                meta = v.meta(k, common.vector_width(x))
                grid = fwd_grid(n, c, hw, hw, r)(meta)

                def run():
                    dwconv_fwd_kernel[grid](x, w, w, y, n, hw, hw, hw, hw, k, k, pad, pad, *x.stride(), *y.stride(),
                                            0, HAS_BIAS=False, R=r, UPCAST=False, IEEE=ieee, num_warps=v.warps,
                                            **meta)

                run()
                err = ((y[:, :8].double() - ref).abs().max() / ref.abs().max()).item()
                ms = time_cuda(run, args.budget_ms)[0]
                pct = 100 * nominal / (ms * 1e-3) / (compute_peak(peaks, dtype) * 1e12)
                ok = err <= TOLERANCE[dtype]
                failures += not ok
                precision = "" if dtype != torch.float32 else ("ieee-fma" if ieee else "3xtf32")
                rows = f"batch rows ALIGN={meta['ALIGN']}" if v.rows == tuning.BATCH_ROWS else \
                    "group rows" + (" carried" if v.carry_bands else "")
                print(f"{n}x{c}x{hw}x{hw} k{k} {str(dtype)[6:]:>8} {precision:>8} {rows:>20} R={r} BM={v.bm} BN={v.bn} "
                      f"warps={v.warps}: {ms:8.3f} ms  {pct:5.1f}% of peak  err {err:.1e}{'' if ok else '  WRONG'}")
        failures += weight_gradients(n, c, hw, k, peaks, args.budget_ms)
    return 1 if failures else 0


def weight_gradients(n, c, hw, k, peaks, budget_ms) -> int:
    """Each bf16 weight-gradient variant of the catalogue, untuned, checked on 8 channels; the
    number wrong."""
    dtype, pad = torch.bfloat16, k // 2
    x = torch.randn(n, c, hw, hw, device="cuda", dtype=dtype)
    dy = torch.randn(n, c, hw, hw, device="cuda", dtype=dtype)
    x8 = x[:, :8].double()
    w8 = torch.zeros(8, 1, k, k, device="cuda", dtype=torch.float64, requires_grad=True)
    F.conv2d(x8, w8, padding=pad, groups=8).backward(dy[:, :8].double())
    ref = w8.grad
    nominal = 2.0 * n * c * hw * hw * k * k
    wrong = 0
    for variant in tuning.WEIGHT_GRAD_VARIANTS:
        def run():
            return launch.bwd_weight(dy, x, k, k, pad, pad, variant=variant)

        err = ((run()[0][:8].double() - ref).abs().max() / ref.abs().max()).item()
        ms = time_cuda(run, budget_ms)[0]
        pct = 100 * nominal / (ms * 1e-3) / (compute_peak(peaks, dtype) * 1e12)
        ok = err <= TOLERANCE[dtype]
        wrong += not ok
        rows = "batch rows" if variant.batch_rows else "group rows"
        print(f"{n}x{c}x{hw}x{hw} k{k} bfloat16 weight gradient {rows:>10} transposed={variant.transposed!s:>5} "
              f"warps={variant.warps}: {ms:8.3f} ms  {pct:5.1f}% of peak  err {err:.1e}{'' if ok else '  WRONG'}")
    return wrong


if __name__ == "__main__":
    raise SystemExit(main())
