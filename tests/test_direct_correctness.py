"""The CPU implementations (the direct route, PyTorch's own path and the compiled CPU kernels, all
candidates of "auto") and "auto" itself, against float64 F.conv2d."""
import pytest
import torch

import replk_ops
from replk_ops._checks import padding_pair
from conv_testing import (
    CPU_BACKENDS,
    assert_close_to_reference, conv64, grads64, make_input, torch_same_dtype,
)

# (N, C, H, W, kh, kw, padding): every kernel size of the suite, rectangular kernels, odd and
# non-square maps, maps smaller than the kernel, C not a multiple of 8, batch 0, 1 and 3.
CASES = [
    (2, 5, 9, 11, 1, 1, "same"),
    (3, 6, 10, 7, 3, 3, "same"),
    (1, 10, 17, 13, 7, 7, "same"),
    (2, 3, 20, 23, 13, 13, "same"),
    (1, 4, 14, 14, 27, 27, "same"),
    (2, 3, 33, 29, 31, 31, "same"),
    (1, 3, 9, 12, 31, 31, "same"),      # map much smaller than the kernel
    (1, 3, 12, 26, 51, 5, "same"),
    (2, 2, 19, 8, 5, 51, "same"),
    (0, 4, 11, 11, 13, 13, "same"),     # empty batch
    (2, 1, 15, 16, 7, 7, "same"),       # one channel
    (2, 3, 12, 10, 7, 5, (1, 4)),       # explicit, asymmetric between H and W
    (1, 3, 6, 5, 3, 3, (5, 6)),         # padding wider than the kernel
    (1, 3, 16, 16, 4, 6, 2),            # even kernel with explicit padding
    (1, 3, 9, 9, 9, 9, "valid"),
]
LAYOUTS = ["nchw", "channels_last", "strided"]


def _run(x, weight, bias, padding, backend, grad_out):
    x = x.detach().clone().requires_grad_()
    weight = weight.detach().clone().requires_grad_()
    bias = None if bias is None else bias.detach().clone().requires_grad_()
    y = replk_ops.dwconv2d(x, weight, bias, padding, backend=backend)
    y.backward(grad_out)
    return y, x.grad, weight.grad, (None if bias is None else bias.grad)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-p{c[6]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64],
                         ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_output_and_gradients(case, layout, dtype, backend):
    n, c, h, w, kh, kw, padding = case
    x = make_input(n, c, h, w, dtype, layout=layout)
    weight = (torch.randn(c, 1, kh, kw, dtype=torch.float64) / (kh * kw) ** 0.5).to(dtype)
    bias = torch.randn(c, dtype=torch.float64).to(dtype)
    pad = padding_pair(padding, (kh, kw))
    ho, wo = h + 2 * pad[0] - kh + 1, w + 2 * pad[1] - kw + 1
    grad_out = torch.randn(n, c, ho, wo, dtype=torch.float64).to(dtype)
    if layout == "channels_last":
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)

    y, dx, dw, db = _run(x, weight, bias, padding, backend, grad_out)
    ref_y = conv64(x, weight, bias, pad)
    ref_dx, ref_dw, ref_db = grads64(x, weight, bias, pad, grad_out)
    if dtype in (torch.float16, torch.bfloat16):
        ty, tdx, tdw, tdb = torch_same_dtype(x, weight, bias, pad, grad_out)
    else:
        ty = tdx = tdw = tdb = None

    assert y.shape == ref_y.shape and y.dtype == dtype
    assert y.is_contiguous(memory_format=torch.channels_last if layout == "channels_last" else
                           torch.contiguous_format) or n == 0
    assert_close_to_reference(y, ref_y, dtype, ty, "output")
    assert_close_to_reference(dx, ref_dx, dtype, tdx, "grad x")
    assert_close_to_reference(dw, ref_dw, dtype, tdw, "grad weight")
    assert_close_to_reference(db, ref_db, dtype, tdb, "grad bias")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-p{c[6]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=lambda d: str(d)[6:])
def test_each_registered_pass_of_torch(case, layout, dtype):
    """PyTorch's own path through the three registered ops one by one, each against float64 (eager
    training calls on it run PyTorch's own backward instead; the direct route's passes always run
    through the test above)."""
    backend = "torch"
    n, c, h, w, kh, kw, padding = case
    x = make_input(n, c, h, w, dtype, layout=layout)
    weight = (torch.randn(c, 1, kh, kw, dtype=torch.float64) / (kh * kw) ** 0.5).to(dtype)
    bias = torch.randn(c, dtype=torch.float64).to(dtype)
    ph, pw = padding_pair(padding, (kh, kw))
    grad_out = make_input(n, c, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1, dtype, layout=layout)
    ops = torch.ops.replk_ops
    y = ops.dwconv2d_fwd(x, weight, bias, ph, pw, backend)
    dx = ops.dwconv2d_bwd_input(grad_out, weight, ph, pw, backend)
    dw, db = ops.dwconv2d_bwd_weight(grad_out, x, kh, kw, ph, pw, backend)
    half = dtype != torch.float32
    ty, tdx, tdw, tdb = torch_same_dtype(x, weight, bias, (ph, pw), grad_out) if half else (None,) * 4
    ref_dx, ref_dw, ref_db = grads64(x, weight, bias, (ph, pw), grad_out)
    assert_close_to_reference(y, conv64(x, weight, bias, (ph, pw)), dtype, ty, "output")
    assert_close_to_reference(dx, ref_dx, dtype, tdx, "grad x")
    assert_close_to_reference(dw, ref_dw, dtype, tdw, "grad weight")
    assert_close_to_reference(db, ref_db, dtype, tdb, "grad bias")


def test_nan_and_inf_propagate_like_conv2d():
    x = torch.randn(1, 2, 9, 9)
    x[0, 0, 4, 4] = float("nan")
    x[0, 1, 1, 1] = float("inf")
    weight = torch.randn(2, 1, 5, 5).abs()
    y = replk_ops.dwconv2d(x, weight)
    ref = torch.nn.functional.conv2d(x, weight, padding=2, groups=2)
    assert torch.equal(torch.isnan(y), torch.isnan(ref))
    assert torch.equal(torch.isinf(y), torch.isinf(ref))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES[1:5] + CASES[7:9], ids=lambda c: "x".join(map(str, c[:6])))
def test_auto_matches_float64(case, layout):
    """Whatever "auto" plans per pass (rules, measurements, or both), the numbers are right."""
    n, c, h, w, kh, kw, padding = case
    x = make_input(n, c, h, w, torch.float32, layout=layout)
    weight = torch.randn(c, 1, kh, kw) / (kh * kw) ** 0.5
    bias = torch.randn(c)
    pad = padding_pair(padding, (kh, kw))
    grad_out = torch.randn(n, c, h + 2 * pad[0] - kh + 1, w + 2 * pad[1] - kw + 1)
    y, dx, dw, db = _run(x, weight, bias, padding, "auto", grad_out)
    assert_close_to_reference(y, conv64(x, weight, bias, pad), torch.float32, None, "output")
    for got, want, what in zip((dx, dw, db), grads64(x, weight, bias, pad, grad_out), ("dx", "dw", "db")):
        assert_close_to_reference(got, want, torch.float32, None, what)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradcheck_float64(backend):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 1, 5, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, c: replk_ops.dwconv2d(a, b, c, (2, 1), backend=backend), (x, weight, bias)
    )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradgradcheck_float64(backend):
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 1, 3, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(
        lambda a, b, c: replk_ops.dwconv2d(a, b, c, (1, 3), backend=backend), (x, weight, bias)
    )
