"""Fast, exact large-kernel depthwise convolution for PyTorch.

    import replk_ops
    y = replk_ops.dwconv2d(x, weight, bias, padding="same")   # == F.conv2d(..., groups=C)
    y = replk_ops.dwconv3d(x5, weight5, padding="same")       # == F.conv3d(..., groups=C)
    conv = replk_ops.LargeKernelDWConv2d(256, 31)              # a drop-in nn.Conv2d
    replk_ops.convert(model)                                   # swap eligible convs in place
    replk_ops.revert(model)                                    # and back to plain nn.Conv2d
    print(replk_ops.explain(x, weight))                        # what runs each pass, and why
    replk_ops.export.standard_program(torch.export.export(model, (x,)))  # deployable: plain aten
"""
from .catalog import available_backends
from .modules import LargeKernelDWConv2d, convert, revert
from .eager import dwconv2d, explain
from .eager3d import dwconv3d
from .modules3d import LargeKernelDWConv3d
from .planner import reset
from . import export  # noqa: E402 (needs the ops registered)

__version__ = "0.1.0"

__all__ = ["dwconv2d", "dwconv3d", "LargeKernelDWConv2d", "LargeKernelDWConv3d", "convert", "revert", "explain",
           "available_backends", "reset",
           "__version__"]
