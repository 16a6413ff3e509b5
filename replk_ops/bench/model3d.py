"""Model-level 3-D comparison (``--model uxnet3d`` or ``--model mednext``): a training step and
inference of a small network with its depthwise convs on ``nn.Conv3d`` and, converted, on replk_ops
(same weights, same input, interleaved).

- ``uxnet3d``: a 3D UX-Net-style encoder: a 2x2x2 stem, then per stage a block (7x7x7 depthwise
  conv, norm, 1x1x1 MLP with 4x expansion, residual) and a 2x2x2 downsampling conv; stages of 24,
  48 and 96 channels from a 1x1x64^3 patch (maps 32^3, 16^3, 8^3).
- ``mednext``: a stack of MedNeXt-style blocks (3x3x3 then 5x5x5 depthwise conv, group norm,
  1x1x1 expansion 4x, GELU, 1x1x1 compression, residual) at 32 channels on 32^3.
"""
from __future__ import annotations

import copy
from typing import Dict, List

import torch
from torch import nn

from .. import convert
from .console import RIGHT, print_table
from .timing import cpu_clock, time_cuda, time_interleaved


class _Block(nn.Module):
    def __init__(self, channels: int, kernel: int, norm: str):
        super().__init__()
        self.dw = nn.Conv3d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = nn.GroupNorm(channels if norm == "channel" else 1, channels)
        self.mlp = nn.Sequential(nn.Conv3d(channels, 4 * channels, 1), nn.GELU(), nn.Conv3d(4 * channels, channels, 1))

    def forward(self, x):
        return x + self.mlp(self.norm(self.dw(x)))


def uxnet3d_encoder(channels=(24, 48, 96), kernel: int = 7) -> nn.Module:
    layers: List[nn.Module] = [nn.Conv3d(1, channels[0], 2, stride=2)]
    for i, c in enumerate(channels):
        layers.append(_Block(c, kernel, "channel"))
        if i + 1 < len(channels):
            layers.append(nn.Conv3d(c, channels[i + 1], 2, stride=2))
    return nn.Sequential(*layers)


def mednext_stack(channels: int = 32, kernels=(3, 3, 5, 5)) -> nn.Module:
    return nn.Sequential(nn.Conv3d(1, channels, 1), *(_Block(channels, k, "group") for k in kernels))


MODELS_3D = {"uxnet3d": (uxnet3d_encoder, 64), "mednext": (mednext_stack, 32)}


def run_model3d(name: str, device: torch.device, batch: int, budget_s: float) -> List[Dict]:
    factory, size = MODELS_3D[name]
    torch.manual_seed(0)
    plain = factory().to(device)
    fast = copy.deepcopy(plain)
    converted = convert(fast, min_kernel_size=3)
    x = torch.randn(batch, 1, size, size, size, device=device)

    def step(model):
        def run():
            model.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
        return run

    def infer(model):
        def run():
            with torch.no_grad():
                model(x)
        return run

    rows = []
    for what, make in (("training step", step), ("inference", infer)):
        calls = {"nn.Conv3d": make(plain), "replk_ops": make(fast)}
        if device.type == "cuda":
            times = {k: time_cuda(f, rep_ms=budget_s * 1e3) for k, f in calls.items()}
        else:
            times = time_interleaved(calls, budget_s, cpu_clock(torch.get_num_threads()), min_samples=3)
        rows.append({"model": name, "what": what, "batch": batch, "input": f"{batch}x1x{size}^3",
                     "converted_convs": converted, "nn.Conv3d_ms": times["nn.Conv3d"].median_ms,
                     "replk_ops_ms": times["replk_ops"].median_ms,
                     "speedup": times["nn.Conv3d"].median_ms / times["replk_ops"].median_ms})
    return rows


def print_rows(rows: List[Dict]) -> None:
    print_table(["model", "what", "input", "nn.Conv3d", "replk_ops", "speedup"], ["left"] * 3 + [RIGHT] * 3,
                [[r["model"], r["what"], r["input"], f"{r['nn.Conv3d_ms']:.1f} ms", f"{r['replk_ops_ms']:.1f} ms",
                  f"{r['speedup']:.2f}x"] for r in rows])


__all__ = ["uxnet3d_encoder", "mednext_stack", "run_model3d", "print_rows", "MODELS_3D"]
