"""Structural re-parameterization: BN folding and kernel merging, as pure functions."""
from __future__ import annotations

from typing import Iterable, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def fuse_conv_bn(weight: torch.Tensor, bn: nn.BatchNorm2d, conv_bias: torch.Tensor = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(kernel, bias) of one conv equal to conv followed by ``bn`` in eval mode."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    bias = bn.bias - bn.running_mean * scale
    if conv_bias is not None:
        bias = bias + conv_bias * scale
    return weight * scale.reshape(-1, 1, 1, 1), bias


def pad_to(kernel: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Zero-pad a (C, 1, kh, kw) kernel symmetrically to ``size`` (same centre)."""
    dh, dw = size[0] - kernel.shape[2], size[1] - kernel.shape[3]
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(f"kernel: cannot centre a {tuple(kernel.shape[2:])} kernel in {tuple(size)}")
    return F.pad(kernel, (dw // 2, dw // 2, dh // 2, dh // 2))


def dilate_kernel(kernel: torch.Tensor, dilation: int) -> torch.Tensor:
    """The dense kernel equal to ``kernel`` applied with ``dilation``: size (k - 1) * r + 1."""
    if dilation == 1:
        return kernel
    c, one, kh, kw = kernel.shape
    dense = kernel.new_zeros((c, one, (kh - 1) * dilation + 1, (kw - 1) * dilation + 1))
    dense[:, :, ::dilation, ::dilation] = kernel
    return dense


def merge_dilated_branches(
    large_weight: torch.Tensor,
    large_bn: nn.BatchNorm2d,
    branches: Iterable[Tuple[torch.Tensor, nn.BatchNorm2d, int]],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """UniRepLKNet's dilated re-parameterization: a large depthwise kernel with its BN plus
    parallel dilated small depthwise kernels (weight, BN, dilation), each padded to keep the
    map size, merged into one (kernel, bias) of the large kernel's size."""
    kernel, bias = fuse_conv_bn(large_weight, large_bn)
    size = tuple(kernel.shape[2:])
    for weight, bn, dilation in branches:
        small, small_bias = fuse_conv_bn(weight, bn)
        dense = dilate_kernel(small, dilation)
        if dense.shape[2] > size[0] or dense.shape[3] > size[1]:
            raise ValueError(f"branches: a {tuple(weight.shape[2:])} kernel with dilation {dilation} spans "
                             f"{tuple(dense.shape[2:])}, larger than the large kernel {size}")
        kernel = kernel + pad_to(dense, size)
        bias = bias + small_bias
    return kernel, bias
