"""A UniRepLKNet-style dilated re-parameterization block (Ding et al., "UniRepLKNet", CVPR 2024).

While training, a large depthwise conv + BN runs beside small dilated depthwise convs + BNs, all
reading the same input, and their outputs are summed; ``merge_dilated_branches()`` folds them into
the one large kernel for inference. Every conv here is a plain ``nn.Conv2d``, as in the original
code, so ``replk_ops.convert`` puts them all on replk_ops (dilated branches included).
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn

from .reparam import merge_dilated_branches

# (kernel size, dilation) of the branches beside each large kernel size, as published.
BRANCHES: Dict[int, Tuple[Tuple[int, int], ...]] = {
    17: ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
    15: ((5, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    7: ((5, 1), (3, 2), (3, 3)),
    5: ((3, 1), (3, 2)),
}


def _depthwise(channels: int, kernel: int, dilation: int = 1, bias: bool = False) -> nn.Conv2d:
    span = (kernel - 1) * dilation + 1
    return nn.Conv2d(channels, channels, kernel, padding=span // 2, dilation=dilation, groups=channels, bias=bias)


class DilatedReparamBlock(nn.Module):
    """``origin_bn(lk_origin(x)) + sum of dil_bn_k{k}_{d}(dil_conv_k{k}_{d}(x))`` over the branches
    of ``BRANCHES[kernel_size]``; after ``merge_dilated_branches()``, ``lk_origin(x)`` alone (with
    a bias)."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        if kernel_size not in BRANCHES:
            raise ValueError(f"kernel_size: expected one of {sorted(BRANCHES)}, got {kernel_size!r}")
        self.branches = BRANCHES[kernel_size]
        self.lk_origin = _depthwise(channels, kernel_size)
        self.origin_bn = nn.BatchNorm2d(channels)
        for k, d in self.branches:
            self.add_module(f"dil_conv_k{k}_{d}", _depthwise(channels, k, d))
            self.add_module(f"dil_bn_k{k}_{d}", nn.BatchNorm2d(channels))

    @property
    def merged(self) -> bool:
        return not hasattr(self, "origin_bn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for k, d in self.branches:
            out = out + getattr(self, f"dil_bn_k{k}_{d}")(getattr(self, f"dil_conv_k{k}_{d}")(x))
        return out

    @torch.no_grad()
    def merge_dilated_branches(self) -> None:
        """Fold the BNs and the dilated branches into ``lk_origin`` (eval-mode BN statistics), in
        place; ``lk_origin`` keeps its class (a converted one stays on replk_ops)."""
        if self.merged:
            return
        branches = [(getattr(self, f"dil_conv_k{k}_{d}").weight, getattr(self, f"dil_bn_k{k}_{d}"), d)
                    for k, d in self.branches]
        kernel, bias = merge_dilated_branches(self.lk_origin.weight, self.origin_bn, branches)
        self.lk_origin.weight.copy_(kernel)
        self.lk_origin.bias = nn.Parameter(bias)
        for k, d in self.branches:
            delattr(self, f"dil_conv_k{k}_{d}")
            delattr(self, f"dil_bn_k{k}_{d}")
        delattr(self, "origin_bn")


__all__ = ["BRANCHES", "DilatedReparamBlock"]
