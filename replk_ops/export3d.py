"""The 3-D ops for deployment: ``export``'s decompositions, ONNX translations and TorchScript-ONNX
symbolic for ``replk_ops::dwconv3d_*`` (``export.py`` merges them into its own tables)."""
# No `from __future__ import annotations`: the ONNX exporter reads the translations' annotations.
from typing import Callable, Dict

import torch

from .ops3d import dwconv3d_bwd_input, dwconv3d_bwd_weight, dwconv3d_fwd  # noqa: F401 (registers the ops)

_aten = torch.ops.aten


def _fwd_as_aten(x, weight, bias, padding, backend, dilation):
    return _aten.convolution.default(x, weight, bias, [1, 1, 1], list(padding), list(dilation), False, [0, 0, 0],
                                     weight.shape[0])


def _bwd_input_as_aten(grad_out, weight, padding, backend, dilation):
    # the input gradient of a stride-1 correlation is the transposed convolution
    return _aten.convolution.default(grad_out, weight, None, [1, 1, 1], list(padding), list(dilation), True,
                                     [0, 0, 0], weight.shape[0])


def _bwd_weight_as_aten(grad_out, x, kernel, padding, backend, dilation):
    channels = x.shape[1]
    weight_like = x.new_empty([channels, 1] + list(kernel))  # convolution_backward reads only its shape
    _, grad_weight, grad_bias = _aten.convolution_backward.default(
        grad_out, x, weight_like, [channels], [1, 1, 1], list(padding), list(dilation), False, [0, 0, 0], channels,
        [False, True, True])
    return grad_weight, grad_bias


def decompositions() -> Dict[torch._ops.OpOverload, Callable]:
    return {
        torch.ops.replk_ops.dwconv3d_fwd.default: _fwd_as_aten,
        torch.ops.replk_ops.dwconv3d_bwd_input.default: _bwd_input_as_aten,
        torch.ops.replk_ops.dwconv3d_bwd_weight.default: _bwd_weight_as_aten,
    }


def onnx_translations() -> Dict[torch._ops.OpOverload, Callable]:
    """``replk_ops::dwconv3d_fwd`` as an ONNX ``Conv`` with ``group = C`` (needs onnxscript)."""
    from onnxscript import opset18 as op

    def dwconv3d_fwd_to_onnx(x, weight, bias=None, padding=(0, 0, 0), backend: str = "auto", dilation=(1, 1, 1)):
        channels = int(weight.shape[0])
        kernel = [int(d) for d in weight.shape[2:]]
        args = (x, weight) if bias is None else (x, weight, bias)
        pads = [int(p) for p in padding]
        return op.Conv(*args, group=channels, kernel_shape=kernel, pads=pads + pads, strides=[1, 1, 1],
                       dilations=[int(d) for d in dilation])

    return {torch.ops.replk_ops.dwconv3d_fwd.default: dwconv3d_fwd_to_onnx}


def _dwconv3d_fwd_symbolic(g, x, weight, bias, padding, backend, dilation):
    from torch.onnx import symbolic_helper

    pads = symbolic_helper._get_const(padding, "is", "padding")
    dils = symbolic_helper._get_const(dilation, "is", "dilation")
    sizes = symbolic_helper._get_tensor_sizes(weight)
    inputs = (x, weight) if symbolic_helper._is_none(bias) else (x, weight, bias)
    return g.op("Conv", *inputs, group_i=sizes[0], kernel_shape_i=sizes[2:], pads_i=list(pads) + list(pads),
                strides_i=[1, 1, 1], dilations_i=list(dils))


def register_legacy_onnx_symbolic(opset: int) -> None:
    torch.onnx.register_custom_op_symbolic("replk_ops::dwconv3d_fwd", _dwconv3d_fwd_symbolic, opset)
