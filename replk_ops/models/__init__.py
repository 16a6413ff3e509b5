"""Models built on replk_ops: the RepLKNet family, a UniRepLKNet-style dilated block and
re-parameterization helpers."""
from .dilated import DilatedReparamBlock
from .reparam import dilate_kernel, fuse_conv_bn, merge_dilated_branches, pad_to
from .replknet import (
    ConvFFN, RepLKBlock, RepLKNet, RepLKNetStage, ReparamLargeKernelConv, replknet31b, replknet31l, replknet_xl,
    structural_reparam,
)

__all__ = [
    "ConvFFN", "RepLKBlock", "RepLKNet", "RepLKNetStage", "ReparamLargeKernelConv", "replknet31b", "replknet31l",
    "replknet_xl", "structural_reparam", "merge_dilated_branches", "fuse_conv_bn", "dilate_kernel", "pad_to",
    "DilatedReparamBlock",
]
