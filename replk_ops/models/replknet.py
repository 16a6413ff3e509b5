"""RepLKNet (Ding et al., CVPR 2022) on replk_ops, with the published checkpoints' state_dict
layout: module names and nesting follow the original code, so published weights load with
``strict=True`` before and after ``structural_reparam()``."""
# No `from __future__ import annotations`: TorchScript resolves these annotations when scripting.
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..modules import LargeKernelDWConv2d
from .reparam import fuse_conv_bn, pad_to


def _conv(in_channels, out_channels, kernel_size, stride, padding, groups, bias=False) -> nn.Module:
    if in_channels == out_channels == groups and stride == 1 and kernel_size > 1 and padding == kernel_size // 2:
        return LargeKernelDWConv2d(in_channels, kernel_size, bias=bias)
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)


def conv_bn(in_channels, out_channels, kernel_size, stride=1, groups=1, bn=nn.BatchNorm2d) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("conv", _conv(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups))
    seq.add_module("bn", bn(out_channels))
    return seq


def conv_bn_relu(in_channels, out_channels, kernel_size, stride=1, groups=1, bn=nn.BatchNorm2d) -> nn.Sequential:
    seq = conv_bn(in_channels, out_channels, kernel_size, stride, groups, bn)
    seq.add_module("nonlinear", nn.ReLU())
    return seq


def _run_checkpointed(layers, x: torch.Tensor) -> torch.Tensor:
    """``layers`` applied in turn, each recomputed in backward instead of stored (a training step
    with activation checkpointing). Called only from ``@torch.jit.unused`` methods: TorchScript
    cannot compile checkpoint()."""
    for layer in layers:
        x = checkpoint(layer, x, use_reentrant=False) if layer.training and x.requires_grad else layer(x)
    return x


class DropPath(nn.Module):
    """Stochastic depth: drops the residual branch per sample while training."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty([x.shape[0]] + [1] * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class ReparamLargeKernelConv(nn.Module):
    """A large depthwise conv + BN beside a small one + BN, summed; ``merge_kernel()`` turns the
    pair into one ``LargeKernelDWConv2d`` with bias (``lkb_reparam``)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, groups, small_kernel: Optional[int],
                 small_kernel_merged=False, bn=nn.BatchNorm2d):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd size, got {kernel_size}")
        if small_kernel is not None:
            if small_kernel % 2 == 0:
                raise ValueError(f"small_kernel: expected an odd size, got {small_kernel}")
            if small_kernel > kernel_size:
                raise ValueError(f"small_kernel: expected at most kernel_size={kernel_size}, got {small_kernel}")
        if in_channels != out_channels and groups == in_channels:
            raise ValueError(f"out_channels: a depthwise conv needs out_channels == in_channels={in_channels}, "
                             f"got {out_channels}")
        self.kernel_size = kernel_size
        self.small_kernel = small_kernel
        if small_kernel_merged:
            self.lkb_reparam = _conv(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups, bias=True)
        else:
            self.lkb_origin = conv_bn(in_channels, out_channels, kernel_size, stride, groups, bn)
            if small_kernel is not None:
                self.small_conv = conv_bn(in_channels, out_channels, small_kernel, stride, groups, bn)

    def forward(self, x):
        if hasattr(self, "lkb_reparam"):
            return self.lkb_reparam(x)
        out = self.lkb_origin(x)
        if hasattr(self, "small_conv"):
            out = out + self.small_conv(x)
        return out

    def get_equivalent_kernel_bias(self):
        kernel, bias = fuse_conv_bn(self.lkb_origin.conv.weight, self.lkb_origin.bn)
        if hasattr(self, "small_conv"):
            small, small_bias = fuse_conv_bn(self.small_conv.conv.weight, self.small_conv.bn)
            kernel = kernel + pad_to(small, tuple(kernel.shape[2:]))
            bias = bias + small_bias
        return kernel, bias

    @torch.no_grad()
    def merge_kernel(self) -> None:
        if hasattr(self, "lkb_reparam"):
            return
        kernel, bias = self.get_equivalent_kernel_bias()
        origin = self.lkb_origin.conv
        self.lkb_reparam = _conv(origin.in_channels, origin.out_channels, self.kernel_size, origin.stride[0],
                                 self.kernel_size // 2, origin.groups, bias=True).to(kernel.device, kernel.dtype)
        self.lkb_reparam.weight.copy_(kernel)
        self.lkb_reparam.bias.copy_(bias)
        del self.lkb_origin
        if hasattr(self, "small_conv"):
            del self.small_conv


class RepLKBlock(nn.Module):
    def __init__(self, in_channels, dw_channels, block_lk_size, small_kernel, drop_path, small_kernel_merged=False,
                 bn=nn.BatchNorm2d):
        super().__init__()
        self.pw1 = conv_bn_relu(in_channels, dw_channels, 1, bn=bn)
        self.pw2 = conv_bn(dw_channels, in_channels, 1, bn=bn)
        self.large_kernel = ReparamLargeKernelConv(dw_channels, dw_channels, block_lk_size, 1, dw_channels,
                                                   small_kernel, small_kernel_merged, bn=bn)
        self.lk_nonlinear = nn.ReLU()
        self.prelkb_bn = bn(in_channels)
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        out = self.pw2(self.lk_nonlinear(self.large_kernel(self.pw1(self.prelkb_bn(x)))))
        return x + self.drop_path(out)


class ConvFFN(nn.Module):
    def __init__(self, in_channels, internal_channels, out_channels, drop_path, bn=nn.BatchNorm2d):
        super().__init__()
        self.drop_path = DropPath(drop_path)
        self.preffn_bn = bn(in_channels)
        self.pw1 = conv_bn(in_channels, internal_channels, 1, bn=bn)
        self.pw2 = conv_bn(internal_channels, out_channels, 1, bn=bn)
        self.nonlinear = nn.GELU()

    def forward(self, x):
        out = self.pw2(self.nonlinear(self.pw1(self.preffn_bn(x))))
        return x + self.drop_path(out)


class RepLKNetStage(nn.Module):
    def __init__(self, channels, num_blocks, stage_lk_size, drop_path: Sequence[float], small_kernel, dw_ratio=1,
                 ffn_ratio=4, use_checkpoint=False, small_kernel_merged=False, norm_intermediate_features=False,
                 bn=nn.BatchNorm2d):
        super().__init__()
        self.use_checkpoint = use_checkpoint
        blocks = []
        for i in range(num_blocks):
            blocks.append(RepLKBlock(channels, int(channels * dw_ratio), stage_lk_size, small_kernel, drop_path[i],
                                     small_kernel_merged, bn=bn))
            blocks.append(ConvFFN(channels, int(channels * ffn_ratio), channels, drop_path[i], bn=bn))
        self.blocks = nn.ModuleList(blocks)
        self.norm = bn(channels) if norm_intermediate_features else nn.Identity()

    def forward(self, x):
        if self.use_checkpoint and self.training:
            return self._forward_checkpointed(x)
        for block in self.blocks:
            x = block(x)
        return x

    @torch.jit.unused
    def _forward_checkpointed(self, x: torch.Tensor) -> torch.Tensor:
        return _run_checkpointed(self.blocks, x)


class RepLKNet(nn.Module):
    def __init__(self, large_kernel_sizes: List[int], layers: List[int], channels: List[int], drop_path_rate=0.3,
                 small_kernel: Optional[int] = 5, dw_ratio=1, ffn_ratio=4, in_channels=3, num_classes=1000,
                 out_indices: Optional[Sequence[int]] = None, use_checkpoint=False, small_kernel_merged=False,
                 use_sync_bn=False, norm_intermediate_features=False):
        super().__init__()
        if not (len(large_kernel_sizes) == len(layers) == len(channels)):
            raise ValueError(f"large_kernel_sizes, layers, channels: expected equal lengths, got "
                             f"{len(large_kernel_sizes)}, {len(layers)}, {len(channels)}")
        for k in large_kernel_sizes:
            if k % 2 == 0:
                raise ValueError(f"large_kernel_sizes: expected odd sizes, got {large_kernel_sizes}")
            if small_kernel is not None and small_kernel > k:
                raise ValueError(f"small_kernel: expected at most every large kernel size, got {small_kernel} > {k}")
        if num_classes is None and out_indices is None:
            raise ValueError("num_classes, out_indices: give a number of classes or the stages to output")
        bn = nn.SyncBatchNorm if use_sync_bn else nn.BatchNorm2d
        self.out_indices = out_indices
        self.use_checkpoint = use_checkpoint
        base = channels[0]
        self.stem = nn.ModuleList([
            conv_bn_relu(in_channels, base, 3, stride=2, bn=bn),
            conv_bn_relu(base, base, 3, stride=1, groups=base, bn=bn),
            conv_bn_relu(base, base, 1, stride=1, bn=bn),
            conv_bn_relu(base, base, 3, stride=2, groups=base, bn=bn),
        ])
        total = sum(layers)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # linear, as the paper
        self.stages = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for i, (k, depth, width) in enumerate(zip(large_kernel_sizes, layers, channels)):
            start = sum(layers[:i])
            self.stages.append(RepLKNetStage(
                width, depth, k, rates[start:start + depth], small_kernel, dw_ratio, ffn_ratio, use_checkpoint,
                small_kernel_merged, norm_intermediate_features or out_indices is not None, bn=bn))
            if i < len(layers) - 1:
                self.transitions.append(nn.Sequential(
                    conv_bn_relu(width, channels[i + 1], 1, bn=bn),
                    conv_bn_relu(channels[i + 1], channels[i + 1], 3, stride=2, groups=channels[i + 1], bn=bn)))
        if num_classes is not None and out_indices is None:
            self.norm = bn(channels[-1])
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(channels[-1], num_classes)

    def forward_features(self, x):
        """The last stage's features, or with ``out_indices`` the list of the chosen stages'."""
        outputs = self._stage_features(x)
        return outputs if self.out_indices is not None else outputs[-1]

    def _stage_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """With ``out_indices``: the chosen stages' normalized outputs; else [the last stage's]."""
        if self.use_checkpoint and self.training:
            x = self._stem_checkpointed(x)
        else:
            for layer in self.stem:
                x = layer(x)
        outputs: List[torch.Tensor] = []
        # the transitions sit between stages, one fewer; TorchScript only indexes modules by constants
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if self.out_indices is not None:
                if i in self.out_indices:
                    outputs.append(stage.norm(x))
            for j, transition in enumerate(self.transitions):
                if j == i:
                    x = transition(x)
        if self.out_indices is None:
            outputs.append(x)
        return outputs

    @torch.jit.unused
    def _stem_checkpointed(self, x: torch.Tensor) -> torch.Tensor:
        return _run_checkpointed(self.stem, x)

    def forward(self, x):
        if self.out_indices is not None:
            return self._stage_features(x)
        x = self._stage_features(x)[-1]
        x = self.norm(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.head(x)

    def structural_reparam(self) -> int:
        return structural_reparam(self)


def structural_reparam(model: nn.Module) -> int:
    """Merge every ``ReparamLargeKernelConv`` in ``model`` (large + small kernel, each with its BN)
    into one ``LargeKernelDWConv2d`` with bias. Returns how many were merged. Use in eval mode."""
    merged = 0
    for module in model.modules():
        if isinstance(module, ReparamLargeKernelConv) and not hasattr(module, "lkb_reparam"):
            module.merge_kernel()
            merged += 1
    return merged


def replknet31b(**kwargs) -> RepLKNet:
    return RepLKNet([31, 29, 27, 13], [2, 2, 18, 2], [128, 256, 512, 1024], small_kernel=5, **kwargs)


def replknet31l(**kwargs) -> RepLKNet:
    return RepLKNet([31, 29, 27, 13], [2, 2, 18, 2], [192, 384, 768, 1536], small_kernel=5, **kwargs)


def replknet_xl(**kwargs) -> RepLKNet:
    return RepLKNet([27, 27, 27, 13], [2, 2, 18, 2], [256, 512, 1024, 2048], small_kernel=None, dw_ratio=1.5,
                    **kwargs)
