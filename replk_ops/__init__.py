"""Fast, exact large-kernel depthwise convolution for PyTorch.

    import replk_ops
    y = replk_ops.dwconv2d(x, weight, bias, padding="same")   # == F.conv2d(..., groups=C)
    conv = replk_ops.LargeKernelDWConv2d(256, 31)              # a drop-in nn.Conv2d
    replk_ops.convert(model)                                   # swap eligible convs in place
    print(replk_ops.explain(x, weight))                        # what runs each pass, and why
"""
from . import _extension
from .catalog import available_backends
from .modules import LargeKernelDWConv2d, convert
from .ops import dwconv2d, explain
from .planner import reset

__version__ = "0.1.0"

__all__ = ["dwconv2d", "LargeKernelDWConv2d", "convert", "explain", "available_backends", "reset", "__version__"]
