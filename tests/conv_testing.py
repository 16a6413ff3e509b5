"""Shared helpers: a float64 reference and dtype-aware error bounds."""
from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F


# (N, C, H, W, kh, kw, padding) small enough for the Triton interpreter but hitting every path of
# the GPU kernels: several row tiles and column strips, maps smaller than the kernel, rectangular
# kernels, explicit and wider-than-kernel padding, tap loops cut by the tile's rows.
KERNEL_PATH_CASES = [
    (2, 3, 9, 11, 5, 5, "same"),
    (1, 2, 40, 37, 7, 7, "same"),         # 2 column strips, rows span several tiles
    (3, 2, 30, 5, 13, 3, "same"),         # rows of one tile span images
    (3, 2, 12, 20, 9, 9, "same"),         # groups of four output rows, tiles spanning images
    (2, 2, 10, 9, 31, 31, "same"),        # map far smaller than the kernel
    (1, 2, 12, 26, 51, 5, "same"),
    (1, 2, 12, 26, 5, 51, "same"),
    (1, 3, 8, 8, 1, 1, "same"),
    (1, 2, 11, 13, 4, 6, (2, 1)),         # even kernel, explicit padding
    (1, 2, 6, 7, 3, 5, (4, 6)),           # padding wider than the kernel
    (1, 1, 70, 9, 63, 3, "same"),         # the largest kernel
]


def tiny_replknet(num_classes=5, **kwargs):
    """A RepLKNet small enough for CPU tests: one block per stage, 8 to 16 channels."""
    from replk_ops import models

    return models.RepLKNet(large_kernel_sizes=[7, 7, 5, 5], layers=[1, 1, 1, 1], channels=[8, 8, 16, 16],
                           small_kernel=3, drop_path_rate=0.0, num_classes=num_classes, **kwargs)


def make_input(n, c, h, w, dtype, device="cpu", layout="nchw"):
    """An input of the requested layout: "nchw", "channels_last" or "strided" (a sliced view)."""
    if layout == "strided":
        big = torch.randn(n, c, h, 2 * w + 1, dtype=torch.float64, device=device)
        return big[..., 1::2].to(dtype) if dtype == torch.float64 else big.to(dtype)[..., 1::2]
    x = torch.randn(n, c, h, w, dtype=torch.float64, device=device).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def conv64(x, weight, bias, padding, dilation=1):
    """``F.conv2d`` in float64 on CPU: the ground truth."""
    b = None if bias is None else bias.detach().double().cpu()
    return F.conv2d(x.detach().double().cpu(), weight.detach().double().cpu(), b, padding=padding,
                    dilation=dilation, groups=x.shape[1])


def grads64(x, weight, bias, padding, grad_out, dilation=1):
    """(dx, dw, db) of the float64 reference for the given output gradient."""
    xd = x.detach().double().cpu().requires_grad_()
    wd = weight.detach().double().cpu().requires_grad_()
    bd = None if bias is None else bias.detach().double().cpu().requires_grad_()
    y = F.conv2d(xd, wd, bd, padding=padding, dilation=dilation, groups=x.shape[1])
    y.backward(grad_out.detach().double().cpu())
    return xd.grad, wd.grad, (None if bd is None else bd.grad)


def torch_same_dtype(x, weight, bias, padding, grad_out, dilation=1):
    """PyTorch's own conv and gradients in the inputs' dtype: the yardstick for half precision."""
    xs = x.detach().clone().requires_grad_()
    ws = weight.detach().clone().requires_grad_()
    bs = None if bias is None else bias.detach().clone().requires_grad_()
    y = F.conv2d(xs, ws, bs, padding=padding, dilation=dilation, groups=x.shape[1])
    y.backward(grad_out)
    return y, xs.grad, ws.grad, (None if bs is None else bs.grad)


def max_rel_error(actual, expected):
    """Max absolute error relative to the largest magnitude of ``expected``."""
    actual = actual.detach().double().cpu()
    expected = expected.detach().double().cpu()
    if expected.numel() == 0:
        return 0.0
    scale = expected.abs().max().item() or 1.0
    return (actual - expected).abs().max().item() / scale


def assert_close_to_reference(actual, expected, dtype, yardstick=None, what="output"):
    """fp32/fp64: 1e-4 relative (1e-10 for fp64). fp16/bf16: at most 2x PyTorch's own error."""
    assert torch.isfinite(actual).all() or not torch.isfinite(expected).all(), f"{what}: non-finite values"
    err = max_rel_error(actual, expected)
    if dtype == torch.float64:
        bound = 1e-10
    elif dtype == torch.float32:
        bound = 1e-4
    else:
        assert yardstick is not None, "half precision needs PyTorch's own result as a yardstick"
        # a small floor keeps a yardstick that happened to be exact from demanding exactness
        unit = torch.finfo(dtype).eps
        bound = max(2 * max_rel_error(yardstick, expected), unit)
    assert err <= bound, f"{what}: relative error {err:.3e} exceeds {bound:.3e} ({dtype})"


def randomize_bn(model) -> None:
    """Random BN statistics and affine parameters, so that fusing them is really tested."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def assert_compiled_matches_eager(conv, x) -> None:
    """``torch.compile(conv, fullgraph=True)`` gives eager's output and gradients (x, weight, bias)."""
    torch._dynamo.reset()
    eager = conv(x)
    eager.sum().backward()
    grads = (x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone())
    x.grad = None
    conv.zero_grad()
    out = torch.compile(conv, fullgraph=True)(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager)
    for got, want in zip((x.grad, conv.weight.grad, conv.bias.grad), grads):
        torch.testing.assert_close(got, want)


# Every subprocess a test starts (a compile, a bench run, an install, a README block) has this limit:
# a hang guard, not a speed limit. Beside other jobs on 2 cores the CUDA kernels' host emulation
# took over 10 minutes to compile (about one on a quiet machine).
HANG_GUARD_S = 3600


# torch 2.4's FX cannot record F.conv2d with a traced group count (modules holding
# LargeKernelDWConv2d trace there): the tests of the functional op under FX skip
FX_TRACES_FUNCTIONAL_OP = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 5)
needs_fx_functional = pytest.mark.skipif(
    not FX_TRACES_FUNCTIONAL_OP, reason=f"torch {torch.__version__}'s FX cannot record F.conv2d with a traced group "
                                        "count (modules holding LargeKernelDWConv2d trace there)")


# The compiled CPU kernels (replk_ops._cpu) are built by every install with a C++ compiler; where one
# was not, their tests skip with the reason (and .ci/run fails if a compiler was there).
from replk_ops.backends.cpp import loader as _cpp  # noqa: E402

needs_cpp = pytest.mark.skipif(_cpp.UNAVAILABLE is not None, reason=str(_cpp.UNAVAILABLE))
# The CPU implementations every correctness matrix runs
CPU_BACKENDS = ["direct", "torch", pytest.param("cpp", marks=needs_cpp)]

# torch.onnx.export's dynamo exporter with custom translation tables (torch >= 2.5)
HAS_DYNAMO_ONNX = "custom_translation_table" in inspect.signature(torch.onnx.export).parameters
needs_dynamo_onnx = pytest.mark.skipif(
    not HAS_DYNAMO_ONNX, reason=f"torch {torch.__version__} has no dynamo-based torch.onnx.export with translation tables")
