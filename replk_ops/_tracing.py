"""When a call is being recorded for a runtime without replk_ops, and the standard convolution
recorded in its place.

``torch.jit.trace`` (and the TorchScript-based ONNX exporter built on it), ``torch.fx`` symbolic
tracing and the dynamo-based ONNX exporter each produce a graph that is meant to run elsewhere:
there the depthwise conv must be a plain ``aten.convolution`` (ONNX ``Conv`` with ``group = C``),
which every runtime has. ``torch.compile`` and ``torch.export`` keep the fast op instead: their
graphs run where replk_ops is installed (Inductor, AOTInductor).
"""
from typing import Optional

import torch
import torch.nn.functional as F

from ._checks import dilation_pair, padding_pair

# plain eager tensors; anything else (fake tensors, DTensor, FX proxies) is a subclass or a tracer
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def records_standard_conv(x) -> bool:
    """Whether a depthwise conv on ``x`` is being recorded for a standard runtime."""
    if type(x) in _PLAIN_TENSOR_TYPES:
        return torch.jit.is_tracing()  # eager, unless jit.trace records it (dynamo knows this call)
    if torch.jit.is_tracing():
        return True
    if isinstance(x, torch.fx.Proxy):
        return True
    # torch.onnx.export(dynamo=True) traces with fake tensors through torch.export; dynamo's own
    # tracing (torch.compile, strict torch.export) keeps the op.
    return not torch.compiler.is_dynamo_compiling() and torch.onnx.is_in_onnx_export()


def standard_dwconv2d(x, weight, bias: Optional[torch.Tensor], padding, dilation=1):
    """``F.conv2d`` with ``groups`` = channels: the same result as ``replk_ops.dwconv2d``.

    ``padding`` is the caller's ("same", "valid", an int or a pair); FX proxies carry no sizes, so
    there the channel count is recorded as ``weight.shape[0]``, read when the graph runs."""
    dilation = dilation_pair(dilation)
    if isinstance(weight, torch.Tensor):
        padding = padding_pair(padding, (weight.shape[2], weight.shape[3]), dilation=dilation)
    return F.conv2d(x, weight, bias, 1, padding, dilation, weight.shape[0])
