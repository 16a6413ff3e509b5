"""Deploying models that use replk_ops to runtimes that do not have it.

Tracing paths record a standard convolution by themselves (``torch.jit.trace``, ``torch.fx``,
``torch.onnx.export`` with either exporter; see ``_tracing.py``). The graphs that keep the fast op
(``torch.export``, ``torch.compile``) are lowered with the tools here:

    ep = torch.export.export(model, (x,))                     # replk_ops::dwconv2d_fwd in the graph
    standard = replk_ops.export.standard_program(ep)          # aten.convolution instead
    torch.export.save(standard, "model.pt2")                  # loads without replk_ops

    torch.onnx.export(ep, custom_translation_table=replk_ops.export.onnx_translations())
    gm = replk_ops.export.symbolic_trace(model)                # FX, the convs kept as fast leaves
"""
# No `from __future__ import annotations`: the ONNX exporter reads the translations' annotations.
from typing import Callable, Dict, Optional

import torch
import torch.fx

from . import export3d
from .modules import LargeKernelDWConv2d
from .modules3d import LargeKernelDWConv3d
from .ops import dwconv2d_bwd_input, dwconv2d_bwd_weight, dwconv2d_fwd  # noqa: F401 (registers the ops)

_aten = torch.ops.aten


# --- decompositions: the three ops as aten convolutions ---------------------------------------
def _fwd_as_aten(x, weight, bias, ph, pw, backend, dh=1, dw=1):
    return _aten.convolution.default(x, weight, bias, [1, 1], [ph, pw], [dh, dw], False, [0, 0], weight.shape[0])


def _bwd_input_as_aten(grad_out, weight, ph, pw, backend, dh=1, dw=1):
    # the input gradient of a stride-1 correlation is the transposed convolution
    return _aten.convolution.default(grad_out, weight, None, [1, 1], [ph, pw], [dh, dw], True, [0, 0],
                                     weight.shape[0])


def _bwd_weight_as_aten(grad_out, x, kh, kw, ph, pw, backend, dh=1, dw=1):
    channels = x.shape[1]
    weight_like = x.new_empty((channels, 1, kh, kw))  # convolution_backward reads only its shape
    _, grad_weight, grad_bias = _aten.convolution_backward.default(
        grad_out, x, weight_like, [channels], [1, 1], [ph, pw], [dh, dw], False, [0, 0], channels,
        [False, True, True])
    return grad_weight, grad_bias


def decompositions() -> Dict[torch._ops.OpOverload, Callable]:
    """A decomposition table mapping each replk_ops op to ``aten.convolution`` (or its backward):
    pass it to ``ExportedProgram.run_decompositions`` alone (only replk_ops is lowered) or merged
    into ``torch.export.default_decompositions()`` (everything is lowered to core ATen)."""
    return {
        torch.ops.replk_ops.dwconv2d_fwd.default: _fwd_as_aten,
        torch.ops.replk_ops.dwconv2d_bwd_input.default: _bwd_input_as_aten,
        torch.ops.replk_ops.dwconv2d_bwd_weight.default: _bwd_weight_as_aten,
        **export3d.decompositions(),
    }


def standard_program(exported_program):
    """``exported_program`` with every replk_ops op lowered to standard ATen convolutions and the
    rest untouched: it saves with ``torch.export.save`` and loads where replk_ops is not installed
    (ONNX, ExecuTorch, TensorRT, a plain PyTorch)."""
    if not isinstance(exported_program, torch.export.ExportedProgram):
        raise TypeError(f"exported_program: expected a torch.export.ExportedProgram, "
                        f"got {type(exported_program).__name__}")
    return exported_program.run_decompositions(decompositions())


# --- ONNX, dynamo exporter: translations for programs that already hold the op --------------
def onnx_translations() -> Dict[torch._ops.OpOverload, Callable]:
    """``custom_translation_table`` for ``torch.onnx.export`` of an ``ExportedProgram`` that holds
    ``replk_ops::dwconv2d_fwd``: it becomes an ONNX ``Conv`` with ``group = C``. (Exporting the
    ``nn.Module`` itself needs no table.) Needs onnxscript."""
    from onnxscript import opset18 as op

    def dwconv2d_fwd_to_onnx(x, weight, bias=None, ph: int = 0, pw: int = 0, backend: str = "auto",
                             dh: int = 1, dw: int = 1):
        channels, _, kh, kw = (int(d) for d in weight.shape)
        args = (x, weight) if bias is None else (x, weight, bias)
        return op.Conv(*args, group=channels, kernel_shape=[kh, kw], pads=[ph, pw, ph, pw],
                       strides=[1, 1], dilations=[dh, dw])

    return {torch.ops.replk_ops.dwconv2d_fwd.default: dwconv2d_fwd_to_onnx, **export3d.onnx_translations()}


# --- ONNX, TorchScript-based exporter (dynamo=False) -----------------------------------------
LEGACY_ONNX_OPSET = 9  # the symbolic serves this opset and every later one (ONNX Conv has had group since 1)


def _dwconv2d_fwd_symbolic(g, x, weight, bias, ph, pw, backend, dh=None, dw=None):
    from torch.onnx import symbolic_helper

    ph, pw = symbolic_helper._get_const(ph, "i", "ph"), symbolic_helper._get_const(pw, "i", "pw")
    dh = 1 if dh is None else symbolic_helper._get_const(dh, "i", "dh")
    dw = 1 if dw is None else symbolic_helper._get_const(dw, "i", "dw")
    channels, _, kh, kw = symbolic_helper._get_tensor_sizes(weight)
    inputs = (x, weight) if symbolic_helper._is_none(bias) else (x, weight, bias)
    return g.op("Conv", *inputs, group_i=channels, kernel_shape_i=[kh, kw], pads_i=[ph, pw, ph, pw],
                strides_i=[1, 1], dilations_i=[dh, dw])


def register_legacy_onnx_symbolic() -> None:
    """Teach the TorchScript-based ONNX exporter ``replk_ops::dwconv2d_fwd`` (for graphs that call
    the op directly; modules and ``dwconv2d`` already trace to a standard conv). Idempotent."""
    torch.onnx.register_custom_op_symbolic("replk_ops::dwconv2d_fwd", _dwconv2d_fwd_symbolic, LEGACY_ONNX_OPSET)
    export3d.register_legacy_onnx_symbolic(LEGACY_ONNX_OPSET)


register_legacy_onnx_symbolic()


# --- FX ----------------------------------------------------------------------------------------
class FastConvTracer(torch.fx.Tracer):
    """An FX tracer that keeps each ``LargeKernelDWConv2d`` as a leaf ``call_module``: the
    GraphModule then runs the fast op (and needs replk_ops). The default tracer traces through
    them to ``torch.conv2d``."""

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, (LargeKernelDWConv2d, LargeKernelDWConv3d)) or super().is_leaf_module(m, module_qualified_name)


def symbolic_trace(root: torch.nn.Module, keep_fast_op: bool = True,
                   concrete_args: Optional[dict] = None) -> torch.fx.GraphModule:
    """``torch.fx.symbolic_trace``, with the large-kernel convs kept as fast leaf modules when
    ``keep_fast_op`` (else they are traced to ``torch.conv2d``, as by torch.fx itself)."""
    if not isinstance(root, torch.nn.Module):
        raise TypeError(f"root: expected an nn.Module, got {type(root).__name__}")
    tracer = FastConvTracer() if keep_fast_op else torch.fx.Tracer()
    graph = tracer.trace(root, concrete_args)
    name = root.__class__.__name__
    return torch.fx.GraphModule(tracer.root, graph, name)


__all__ = [
    "decompositions", "standard_program", "onnx_translations", "register_legacy_onnx_symbolic",
    "FastConvTracer", "symbolic_trace", "LEGACY_ONNX_OPSET",
]
