"""3-D depthwise convs: every pass of every 3-D backend against a float64 reference, over dtypes,
layouts, padding cases, dilations, rectangular kernels and maps smaller than the kernel; gradcheck
and gradgradcheck in float64. Small volumes only: each case runs in milliseconds."""
import pytest
import torch
import torch.nn.functional as F

import replk_ops
from conv_testing import max_rel_error

BACKENDS = ["auto", "torch", "direct", "fft", "cpp"]
# (N, C, D, H, W, kernel, padding, dilation)
CASES = [
    (2, 3, 6, 7, 5, (3, 3, 3), "same", 1),
    (1, 2, 5, 6, 7, (5, 7, 3), "same", 1),             # rectangular kernel
    (1, 2, 3, 4, 3, (7, 7, 7), "same", 1),             # map smaller than the kernel
    (2, 2, 6, 5, 6, (3, 5, 3), "valid", 1),
    (1, 3, 6, 6, 5, (3, 3, 3), 2, 1),                  # padding wider than the span's half
    (1, 2, 5, 6, 7, (4, 2, 3), (1, 0, 3), 1),          # even kernels, asymmetric padding per axis
    (1, 2, 4, 4, 4, (3, 3, 3), (4, 4, 4), 1),          # padding wider than the kernel
    (2, 2, 9, 8, 7, (3, 3, 3), "same", (2, 1, 3)),     # dilation per axis
    (1, 2, 13, 12, 11, (11, 11, 11), "same", 1),       # reaches fft's rule in "auto"
]
# dtype -> bound on the error relative to the output's largest magnitude, beyond the bound
# PyTorch's own same-dtype conv sets (half precision: twice its error, as for 2-D)
DTYPES = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: None, torch.float16: None}


def _reference(x, w, b, padding, dilation, grad_out):
    xd, wd, bd = (t.detach().double().requires_grad_() for t in (x, w, b))
    y = F.conv3d(xd, wd, bd, 1, padding, dilation, x.shape[1])
    y.backward(grad_out.double())
    return y.detach(), xd.grad, wd.grad, bd.grad


def _same_dtype(x, w, b, padding, dilation, grad_out):
    xs, ws, bs = (t.detach().clone().requires_grad_() for t in (x, w, b))
    y = F.conv3d(xs, ws, bs, 1, padding, dilation, x.shape[1])
    y.backward(grad_out)
    return y.detach(), xs.grad, ws.grad, bs.grad


def _layout(t, layout):
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last_3d)
    if layout == "strided":
        wide = torch.cat([t, t], dim=-1)
        return wide[..., ::2]  # every other column: a non-contiguous view with the same values
    return t


def _explicit_padding(kernel, padding, dilation):
    from replk_ops._checks3d import dilation_triple, padding_triple
    return padding_triple(padding, kernel, dilation_triple(dilation))


def _check(case, backend, dtype, layout):
    n, c, d, h, w, kernel, padding, dilation = case
    if backend == "fft" and dilation != 1:
        pytest.skip("fft runs undilated kernels only (test_fft_refuses_dilation)")
    torch.manual_seed(0)
    x = _layout(torch.randn(n, c, d, h, w, dtype=torch.float64).to(dtype), layout).requires_grad_()
    weight = torch.randn((c, 1) + kernel, dtype=torch.float64).to(dtype).requires_grad_()
    bias = torch.randn(c, dtype=torch.float64).to(dtype).requires_grad_()
    pad = _explicit_padding(kernel, padding, dilation)
    y = replk_ops.dwconv3d(x, weight, bias, padding, dilation, backend=backend)
    grad_out = torch.randn(y.shape, dtype=torch.float64).to(dtype)
    y.backward(grad_out)
    ref = _reference(x, weight, bias, pad, dilation, grad_out)
    bound = DTYPES[dtype]
    if bound is None:
        # half precision: twice PyTorch's own same-dtype error, at least float32's bound
        own = _same_dtype(x, weight, bias, pad, dilation, grad_out)
        bounds = [max(2 * max_rel_error(o, r), 1e-5) for o, r in zip(own, ref)]
    else:
        bounds = [bound] * 4
    assert y.dtype == dtype and y.shape == ref[0].shape
    # the output keeps the caller's layout (a strided NCDHW view gives a dense NCDHW output)
    assert y.is_contiguous(memory_format=torch.channels_last_3d if layout == "channels_last" else
                           torch.contiguous_format)
    for name, got, expected, limit in zip(("y", "dx", "dw", "db"), (y, x.grad, weight.grad, bias.grad), ref, bounds):
        err = max_rel_error(got, expected)
        assert err <= limit, f"{name}: error {err:.2e} > {limit:.1e} ({backend}, {dtype}, {layout}, {case})"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_pass_matches_float64(case, backend):
    _check(case, backend, torch.float32, "nchw")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["channels_last", "strided"])
@pytest.mark.parametrize("case", CASES[:2] + CASES[-2:], ids=str)
def test_layouts(case, backend, layout):
    _check(case, backend, torch.float32, layout)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", [CASES[0], CASES[5], CASES[-1]], ids=str)
def test_dtypes(case, backend, dtype):
    _check(case, backend, dtype, "nchw")


@pytest.mark.parametrize("backend", ["direct", "fft", "torch", "cpp"])
def test_gradcheck_and_gradgradcheck(backend):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        return replk_ops.dwconv3d(x, w, b, (1, 1, 0), backend=backend)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


@pytest.mark.parametrize("backend", ["auto", "direct", "fft"])
def test_nan_and_inf_propagate_as_in_conv3d(backend):
    x = torch.randn(1, 2, 6, 6, 6)
    x[0, 0, 1, 1, 1] = float("nan")
    x[0, 1, 4, 4, 4] = float("inf")
    w = torch.rand(2, 1, 3, 3, 3) + 0.1
    y = replk_ops.dwconv3d(x, w, backend=backend)
    ref = F.conv3d(x, w, None, 1, 1, 1, 2)
    assert torch.equal(torch.isnan(y), torch.isnan(ref))
    assert torch.equal(torch.isinf(y), torch.isinf(ref))
    finite = torch.isfinite(ref)
    assert torch.allclose(y[finite], ref[finite], atol=1e-5)


def test_empty_batch():
    x = torch.randn(0, 2, 4, 4, 4, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, 3, requires_grad=True)
    y = replk_ops.dwconv3d(x, w)
    y.sum().backward()
    assert y.shape == (0, 2, 4, 4, 4) and torch.equal(w.grad, torch.zeros_like(w))


def test_deterministic_mode_plans_without_timing_and_repeats_exactly():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 6, 6, 6, requires_grad=True)
    w = torch.randn(2, 1, 5, 5, 5, requires_grad=True)
    torch.use_deterministic_algorithms(True)
    try:
        runs = []
        for _ in range(2):
            x.grad = w.grad = None
            y = replk_ops.dwconv3d(x, w)
            y.sum().backward()
            runs.append((y.detach().clone(), x.grad.clone(), w.grad.clone()))
        plan = replk_ops.explain(x.detach(), w.detach())
    finally:
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    assert "measured" not in str(plan)


def test_fft_refuses_dilation():
    with pytest.raises(RuntimeError, match="backend: 'fft' cannot run this call: undilated kernels only"):
        replk_ops.dwconv3d(torch.randn(1, 2, 6, 6, 6), torch.randn(2, 1, 3, 3, 3), dilation=2, backend="fft")


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
def test_compiled_weight_gradient_writes_every_element(layout):
    """The compiled kernel's output is allocated uninitialized; deterministic mode fills such memory
    with NaN, so an element it does not write shows. 9 channels: one group of 8 and a partial one."""
    pytest.importorskip("replk_ops._cpu")
    torch.manual_seed(0)
    x = _layout(torch.randn(2, 9, 5, 4, 6, dtype=torch.float64), layout)
    dy = _layout(torch.randn(2, 9, 3, 4, 6, dtype=torch.float64), layout)
    torch.use_deterministic_algorithms(True)
    try:
        got = torch.ops.replk_ops_cpu3d.weight_grad(x, dy, [3, 3, 3], [0, 1, 1], [1, 1, 1])
    finally:
        torch.use_deterministic_algorithms(False)
    ref = torch.ops.aten.convolution_backward(dy, x, torch.empty(9, 1, 3, 3, 3, dtype=torch.float64), None,
                                              [1, 1, 1], [0, 1, 1], [1, 1, 1], False, [0, 0, 0], 9,
                                              [False, True, False])[1]
    assert not got.isnan().any()
    assert max_rel_error(got.view(9, 1, 3, 3, 3), ref) < 1e-12


@pytest.mark.parametrize("bias", [True, False])
def test_compiled_forward_writes_every_element(bias):
    """As above, for the compiled forward (which the input gradient runs with the flipped kernel)."""
    pytest.importorskip("replk_ops._cpu")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4, 6, dtype=torch.float64)
    w = torch.randn(3, 1, 3, 2, 3, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64) if bias else None
    torch.use_deterministic_algorithms(True)
    try:
        got = torch.ops.replk_ops_cpu3d.forward(x, w, b, [1, 0, 2], [2, 1, 1])
    finally:
        torch.use_deterministic_algorithms(False)
    ref = F.conv3d(x, w, b, 1, (1, 0, 2), (2, 1, 1), 3)
    assert got.shape == ref.shape and not got.isnan().any()
    assert max_rel_error(got, ref) < 1e-12


@pytest.mark.parametrize("kernel", [(7, 7, 7), (3, 3, 3)])
def test_direct_runs_large_volumes_in_channel_chunks(monkeypatch, kernel):
    """Large NCDHW volumes run chunk by chunk of channels (oneDNN's blocked copies stay small):
    with chunks of one or two channels here, every pass still matches float64."""
    from replk_ops.backends.direct import runner3d as direct3d
    monkeypatch.setattr(direct3d, "CHUNK_BYTES", 2 * 4 * 9 * 9 * 9)
    case = (2, 5, 9, 9, 9, kernel, "same", 1)
    _check(case, "direct", torch.float32, "nchw")
    assert len(direct3d.channel_chunks(torch.empty(1, 5, 9, 9, 9))) == 3
