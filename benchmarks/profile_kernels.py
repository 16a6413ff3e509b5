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

import torch

import replk_ops  # noqa: F401  (loads the extension)

FORWARDS = [(torch.float32, "direct"), (torch.float32, "direct_rows"), (torch.bfloat16, "mma_rows")]
WEIGHT_GRADIENTS = [(torch.float32, "direct"), (torch.float32, "direct_wide"), (torch.bfloat16, "direct"),
                    (torch.bfloat16, "mma")]


def triton_kernels(x, weight, dy, k, pad):
    """The bf16 Triton forward and weight gradient, group rows then batch rows (catalogue entries,
    untuned: group rows as the H200 tuned them at stage 2, batch rows as the sm_90 SASS favours
    them)."""
    from replk_ops.backends.triton.kernels import launch, tuning

    forwards = {"group rows": tuning.ForwardVariant(tuning.GROUP_ROWS, 128, 32, 8),
                "batch rows": tuning.ForwardVariant(tuning.BATCH_ROWS, 128, 16, 8)}
    gradients = {"group rows": tuning.WeightGradVariant(transposed=True, warps=8),
                 "batch rows": tuning.WeightGradVariant(transposed=True, warps=8, batch_rows=True)}
    assert set(forwards.values()) <= set(tuning.FORWARD_VARIANTS)
    assert set(gradients.values()) <= set(tuning.WEIGHT_GRAD_VARIANTS)
    for name, variant in forwards.items():
        launch.fwd(x, weight, None, pad, pad, variant=variant)
        print(f"triton forward bf16 {name}")
    for name, variant in gradients.items():
        launch.bwd_weight(dy, x, k, k, pad, pad, variant=variant)
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
    x, weight, dy = inputs[torch.bfloat16]
    triton_kernels(x, weight, dy, k, pad)
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
