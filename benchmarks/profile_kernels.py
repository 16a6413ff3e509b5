"""Runs each kernel that matters for RepLKNet-31B stage 1 (batch 64) once, for a profiler.

    ncu --clock-control none -k regex:dwconv --section SpeedOfLight ... python benchmarks/profile_kernels.py

The CUDA forward kernels (fp32 direct and direct_rows; bf16 mma_rows) and weight gradients (fp32
direct and direct_wide; bf16 direct and mma), then the bf16 Triton forward and weight gradient
with group-row and batch-row tiles, one launch each, in that order, so that a profile of the
first eleven `dwconv` kernels covers them: where each one's time goes (throughput of each unit,
stall reasons, occupancy, shared-memory bank conflicts) is what the next kernel change needs.
Without a profiler it just runs them and prints their names.
"""
from __future__ import annotations

import argparse
import os

import torch

import replk_ops  # noqa: F401  (loads the extension)
from replk_ops.triton_kernels.launch import AUTOTUNE_ENV

FORWARDS = [(torch.float32, "direct"), (torch.float32, "direct_rows"), (torch.bfloat16, "mma_rows")]
WEIGHT_GRADIENTS = [(torch.float32, "direct"), (torch.float32, "direct_wide"), (torch.bfloat16, "direct"),
                    (torch.bfloat16, "mma")]


def triton_kernels(x, weight, dy, k, pad):
    """The bf16 Triton forward and weight gradient, group rows then batch rows (fixed variants:
    group rows as the H200 tuned them at stage 2, batch rows as the sm_90 SASS favours them)."""
    import triton

    from replk_ops.triton_kernels import launch

    width = min(launch.vector_width(x), launch.vector_width(dy))
    bk16, bk32 = triton.next_power_of_2(16 + k - 1), triton.next_power_of_2(32 + k - 1)
    forwards = {"group rows": dict(BM=128, BN=32, BK=bk32, BATCH_ROWS=False, ALIGN=1),
                "batch rows": dict(BM=128, BN=16, BK=bk16, BATCH_ROWS=True, ALIGN=launch._aligned(16, bk16, k, width))}
    for name, variant in forwards.items():
        launch.fixed_fwd_variant = lambda *_, v=variant: (v, 8)  # noqa: E731
        launch.fwd(x, weight, None, pad, pad)
        print(f"triton forward bf16 {name}")
    gradients = {"group rows": dict(TRANSPOSED=True, BATCH_ROWS=False, ALIGN=1, DY_ALIGN=1),
                 "batch rows": dict(TRANSPOSED=True, BATCH_ROWS=True, ALIGN=launch._aligned(32, bk32, k, width),
                                    DY_ALIGN=width)}
    for name, variant in gradients.items():
        launch.fixed_bwd_weight_variant = lambda *_, v=variant: (v, 8)  # noqa: E731
        launch.bwd_weight(dy, x, k, k, pad, pad)
        print(f"triton weight gradient bf16 {name}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="64x128x56x56", help="NxCxHxW")
    parser.add_argument("--kernel", type=int, default=31)
    args = parser.parse_args(argv)
    n, c, h, w = map(int, args.shape.split("x"))
    k, pad = args.kernel, args.kernel // 2
    ops = torch.ops.replk_ops_C
    inputs = {}
    for dtype in (torch.float32, torch.bfloat16):
        inputs[dtype] = (torch.randn(n, c, h, w, device="cuda", dtype=dtype),
                         (torch.randn(c, 1, k, k, device="cuda") / k).to(dtype),
                         torch.randn(n, c, h, w, device="cuda", dtype=dtype))
    torch.cuda.synchronize()
    for dtype, algo in FORWARDS:
        x, weight, _ = inputs[dtype]
        ops.fwd(x, weight, None, pad, pad, algo)
        print(f"forward {str(dtype)[6:]} {algo}")
    for dtype, algo in WEIGHT_GRADIENTS:
        x, _, dy = inputs[dtype]
        ops.bwd_weight(dy, x, k, k, pad, pad, False, algo)
        print(f"weight gradient {str(dtype)[6:]} {algo}")
    os.environ[AUTOTUNE_ENV] = "0"  # the fixed variants above, not the tuned ones
    x, weight, dy = inputs[torch.bfloat16]
    triton_kernels(x, weight, dy, k, pad)
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
