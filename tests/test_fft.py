"""The fft backend: every pass against float64 F.conv2d, NaN/Inf, the registered ops (opcheck,
gradcheck, compile), deterministic mode and the planner's rules (its kernel-spectrum cache:
test_fft_cache.py)."""
import pytest
import torch
import torch.nn.functional as F

import replk_ops
from replk_ops import catalog
from replk_ops.backends.fft import thresholds as fft_plan, transforms as fft_math
from replk_ops._checks import padding_pair
from replk_ops.planner import Problem
from conv_testing import (
    assert_close_to_reference, assert_compiled_matches_eager, conv64, grads64, make_input, max_rel_error,
    torch_same_dtype,
)

OPS = torch.ops.replk_ops
FFT = catalog.by_name("fft").runner

# (N, C, H, W, kh, kw, padding): transform sizes at and just past a smooth size, maps smaller than
# the kernel, rectangular and even kernels, explicit and wider-than-kernel padding, batch 0 and 3.
CASES = [
    (2, 3, 9, 11, 5, 5, "same"),
    (3, 2, 16, 13, 7, 3, "same"),
    (1, 3, 17, 19, 15, 15, "same"),      # 17 + 7 = 24 (smooth), 19 + 7 = 26 (not)
    (1, 2, 9, 12, 31, 31, "same"),       # map far smaller than the kernel
    (2, 2, 12, 26, 51, 5, "same"),
    (1, 2, 11, 13, 4, 6, (2, 1)),        # even kernel, explicit padding
    (1, 2, 6, 7, 3, 5, (4, 6)),          # padding wider than the kernel
    (1, 2, 10, 10, 6, 6, (0, 5)),        # no padding on one side, wide on the other
    (1, 2, 9, 9, 9, 9, "valid"),
    (2, 1, 8, 8, 1, 1, "same"),
    (0, 3, 11, 11, 13, 13, "same"),      # empty batch
]
LAYOUTS = ["nchw", "channels_last", "strided"]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def _tensors(case, dtype, layout):
    n, c, h, w, kh, kw, padding = case
    x = make_input(n, c, h, w, dtype, layout=layout)
    weight = (torch.randn(c, 1, kh, kw, dtype=torch.float64) / (kh * kw) ** 0.5).to(dtype)
    bias = torch.randn(c, dtype=torch.float64).to(dtype)
    ph, pw = padding_pair(padding, (kh, kw))
    grad_out = make_input(n, c, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1, dtype,
                          layout="nchw" if layout == "strided" else layout)
    return x, weight, bias, (ph, pw), grad_out


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-p{c[6]}")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_every_pass_matches_float64(case, dtype, layout):
    """The training path (forward and the shared backward) and each registered op on its own."""
    x, weight, bias, (ph, pw), grad_out = _tensors(case, dtype, layout)
    xg, wg, bg = (t.detach().clone().requires_grad_() for t in (x, weight, bias))
    y = replk_ops.dwconv2d(xg, wg, bg, (ph, pw), backend="fft")
    y.backward(grad_out)
    half = dtype in (torch.float16, torch.bfloat16)
    ty, tdx, tdw, tdb = torch_same_dtype(x, weight, bias, (ph, pw), grad_out) if half else (None,) * 4
    ref_dx, ref_dw, ref_db = grads64(x, weight, bias, (ph, pw), grad_out)
    ref_y = conv64(x, weight, bias, (ph, pw))
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    assert y.dtype == dtype and y.shape == ref_y.shape
    assert y.is_contiguous(memory_format=fmt) or x.shape[0] == 0
    for got, want, yard, what in ((y, ref_y, ty, "output"), (xg.grad, ref_dx, tdx, "grad x"),
                                  (wg.grad, ref_dw, tdw, "grad weight"), (bg.grad, ref_db, tdb, "grad bias")):
        assert_close_to_reference(got, want, dtype, yard, what)
    # the registered ops one by one (bwd_input and bwd_weight separately, not the shared backward)
    y_op = OPS.dwconv2d_fwd(x, weight, bias, ph, pw, "fft")
    dx_op = OPS.dwconv2d_bwd_input(grad_out, weight, ph, pw, "fft")
    dw_op, db_op = OPS.dwconv2d_bwd_weight(grad_out, x, weight.shape[2], weight.shape[3], ph, pw, "fft")
    for got, want, yard, what in ((y_op, ref_y, ty, "op output"), (dx_op, ref_dx, tdx, "op grad x"),
                                  (dw_op, ref_dw, tdw, "op grad weight"), (db_op, ref_db, tdb, "op grad bias")):
        assert_close_to_reference(got, want, dtype, yard, what)


# The target kernels (SLaK's 51x51, 61x61, PeLK's 101x101, RepLKNet's 31x31) on their maps, with
# few channels: the error does not depend on the channel count, and float64 F.conv2d is slow.
TARGETS = [(1, 2, 56, 56, 31, 31), (1, 2, 56, 56, 51, 51), (2, 1, 64, 64, 61, 61), (1, 1, 56, 56, 101, 101)]


@pytest.mark.parametrize("shape", TARGETS, ids=lambda s: f"{s[2]}x{s[3]}k{s[4]}")
def test_float32_error_on_target_shapes_within_1e_5(shape):
    n, c, h, w, kh, kw = shape
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    weight = torch.randn(c, 1, kh, kw, dtype=torch.float64) / kh
    bias = torch.randn(c, dtype=torch.float64)
    pad = (kh // 2, kw // 2)
    grad_out = torch.randn(n, c, h, w, dtype=torch.float64)
    xf, wf, bf = (t.float().requires_grad_() for t in (x, weight, bias))
    y = replk_ops.dwconv2d(xf, wf, bf, pad, backend="fft")
    y.backward(grad_out.float())
    ref_dx, ref_dw, _ = grads64(x, weight, bias, pad, grad_out)
    for got, want in ((y, conv64(x, weight, bias, pad)), (xf.grad, ref_dx), (wf.grad, ref_dw)):
        assert max_rel_error(got, want) <= 1e-5


def test_chunks_over_channels_give_the_same_result(monkeypatch):
    x, weight, bias, (ph, pw), grad_out = _tensors((2, 5, 12, 10, 7, 9, "same"), torch.float64, "nchw")
    whole = (FFT.fwd(x, weight, bias, ph, pw),) + FFT.backward(grad_out, x, weight, ph, pw)
    monkeypatch.setattr(fft_math, "CHUNK_BYTES", 1)  # one channel a chunk
    assert len(fft_math.channel_chunks(2, 5, (16, 16), torch.float64)) == 5
    chunked = (FFT.fwd(x, weight, bias, ph, pw),) + FFT.backward(grad_out, x, weight, ph, pw)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [1, 7, 16, 41, 81, 97, 121, 250])
def test_smooth_size_is_the_least_with_the_allowed_factors(n):
    s = fft_math.smooth_size(n)
    assert s >= n and _smooth(s)
    assert not any(_smooth(v) for v in range(n, s))


def _smooth(v):
    for p in fft_math.PRIMES:
        while v % p == 0:
            v //= p
    return v == 1


def test_transform_is_smaller_than_the_linear_size_with_same_padding():
    # 56 + 15 = 71 -> 72, where the linear convolution needs 56 + 30 = 86 -> 90
    assert fft_math.transform_shape(56, 56, 31, 31, 15, 15) == (72, 72)


# --- NaN and Inf ---------------------------------------------------------------------------------

def _poisoned(kind):
    x = torch.randn(1, 2, 12, 12)
    w = torch.randn(2, 1, 5, 5).abs()
    dy = torch.randn(1, 2, 12, 12)
    target = {"x": x, "w": w, "dy": dy}[kind]
    target.view(-1)[5] = float("nan")
    target.view(-1)[-3] = float("inf")
    return x, w, dy


@pytest.mark.parametrize("kind", ["x", "w", "dy"])
def test_nan_and_inf_propagate_like_conv2d(kind):
    x, w, dy = _poisoned(kind)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    ref = F.conv2d(xr, wr, padding=2, groups=2)
    ref.backward(dy)
    xf, wf = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = replk_ops.dwconv2d(xf, wf, padding=2, backend="fft")
    out.backward(dy)
    with torch.no_grad():
        inference = replk_ops.dwconv2d(x, w, padding=2, backend="fft")
    for got, want in ((out, ref), (inference, ref), (xf.grad, xr.grad), (wf.grad, wr.grad)):
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        assert torch.equal(torch.isinf(got), torch.isinf(want))
        finite = torch.isfinite(want)
        torch.testing.assert_close(got[finite], want[finite], rtol=1e-4, atol=1e-4)


# --- the registered ops ----------------------------------------------------------------------------

def _op_samples():
    x = torch.randn(2, 3, 9, 8)
    w = torch.randn(3, 1, 5, 4)
    b = torch.randn(3)
    dy = torch.randn(2, 3, 9, 7)
    cl = torch.channels_last
    return [
        (OPS.dwconv2d_fwd, (x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_(),
                            2, 1, "fft")),
        (OPS.dwconv2d_fwd, (x.contiguous(memory_format=cl), w, None, 2, 1, "fft")),
        (OPS.dwconv2d_bwd_input, (dy.clone().requires_grad_(), w, 2, 1, "fft")),
        (OPS.dwconv2d_bwd_weight, (dy.clone().requires_grad_(), x.clone().requires_grad_(), 5, 4, 2, 1, "fft")),
    ]


@pytest.mark.parametrize("index", range(4))
def test_opcheck(index):
    op, args = _op_samples()[index]
    torch.library.opcheck(op, args)


def test_gradcheck_and_gradgradcheck_float64():
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, 5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def fn(a, c, d):
        return replk_ops.dwconv2d(a, c, d, (2, 3), backend="fft")
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_compile_fullgraph_matches_eager():
    conv = replk_ops.LargeKernelDWConv2d(3, 15, backend="fft")
    assert_compiled_matches_eager(conv, torch.randn(2, 3, 12, 11, requires_grad=True))


def test_autocast_runs_in_bfloat16_like_conv2d():
    x, w = torch.randn(1, 3, 12, 12), torch.randn(3, 1, 9, 9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = replk_ops.dwconv2d(x, w, backend="fft")
        theirs = F.conv2d(x, w, padding=4, groups=3)
    assert ours.dtype == theirs.dtype == torch.bfloat16
    assert max_rel_error(ours, conv64(x.bfloat16(), w.bfloat16(), None, (4, 4))) <= \
        2 * max(max_rel_error(theirs, conv64(x.bfloat16(), w.bfloat16(), None, (4, 4))), 2 ** -8)


# --- determinism ---------------------------------------------------------------------------------

def test_cpu_results_are_bitwise_reproducible():
    x, weight, bias, (ph, pw), grad_out = _tensors((2, 3, 20, 18, 15, 15, "same"), torch.float32, "nchw")
    first = (FFT.fwd(x, weight, bias, ph, pw),) + FFT.backward(grad_out, x, weight, ph, pw)
    for _ in range(3):
        again = (FFT.fwd(x, weight, bias, ph, pw),) + FFT.backward(grad_out, x, weight, ph, pw)
        assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_deterministic_mode_rejects_fft_on_cuda_only():
    fft = catalog.by_name("fft")
    for device, rejected in (("cuda:0", True), ("cpu", False)):
        problem = Problem(device, torch.float32, "nchw", True, 4, 56, 56, 31, 31, 15, 15, True)
        why = fft.rejection(problem, "fwd")
        assert (why is not None) == rejected
        if rejected:
            assert "deterministic" in why


def test_requested_fft_runs_under_deterministic_algorithms_on_cpu():
    x, w = torch.randn(1, 2, 12, 12), torch.randn(2, 1, 7, 7)
    with torch.no_grad():
        reference = replk_ops.dwconv2d(x, w, backend="fft")
    torch.use_deterministic_algorithms(True)
    try:
        with torch.no_grad():
            assert torch.equal(replk_ops.dwconv2d(x, w, backend="fft"), reference)
    finally:
        torch.use_deterministic_algorithms(False)


# --- planner ---------------------------------------------------------------------------------------

def test_auto_leaves_small_kernels_out_with_a_reason():
    plan = replk_ops.explain(torch.randn(1, 8, 56, 56), torch.randn(8, 1, 7, 7))
    for choice in plan.choices.values():
        why = dict(choice.rejected)["fft"]
        assert f"at least {fft_plan.MIN_TAPS} taps" in why and "got 49" in why


def test_auto_leaves_kernels_wider_than_the_map_by_the_taps_that_reach_it():
    # 31x31 on an 8x8 map reaches 64 taps
    plan = replk_ops.explain(torch.randn(1, 8, 8, 8), torch.randn(8, 1, 31, 31))
    assert "got 64" in dict(plan.choices["fwd"].rejected)["fft"]


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_auto_measures_the_forward_and_rules_the_backward_for_large_kernels(layout):
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(1, 4, 40, 40).contiguous(memory_format=fmt)
    plan = replk_ops.explain(x, torch.randn(4, 1, 31, 31))
    fwd = plan.choices["fwd"]
    assert "times" in fwd.how and "fft" in fwd.how
    torch_why = dict(fwd.rejected).get("torch", "")
    if layout == "nchw":  # PyTorch's naive NCHW loop is not worth timing
        assert "naive loop" in torch_why
    else:  # channels_last: PyTorch's call is oneDNN, a candidate
        assert "torch" in fwd.how
    for name in ("bwd_input", "bwd_weight"):
        choice = plan.choices[name]
        assert choice.implementation.name == "fft" and choice.how.startswith("by rule")
        assert f"at least {fft_plan.BACKWARD_MIN_TAPS} taps" in choice.how


def test_auto_measures_the_backward_between_the_two_thresholds():
    # 13x13 = 169 taps: fft is a candidate, but below BACKWARD_MIN_TAPS it must win a measurement
    assert fft_plan.MIN_TAPS <= 169 < fft_plan.BACKWARD_MIN_TAPS
    plan = replk_ops.explain(torch.randn(1, 4, 40, 40).contiguous(memory_format=torch.channels_last),
                             torch.randn(4, 1, 13, 13))
    for name in ("bwd_input", "bwd_weight"):
        assert "times" in plan.choices[name].how and "fft" in plan.choices[name].how


@pytest.mark.gpu
def test_cuda_every_pass_matches_float64():
    x, weight, bias, (ph, pw), grad_out = _tensors((2, 3, 40, 37, 31, 31, "same"), torch.float32, "nchw")
    cuda = [t.cuda() for t in (x, weight, bias, grad_out)]
    y = OPS.dwconv2d_fwd(cuda[0], cuda[1], cuda[2], ph, pw, "fft")
    dx = OPS.dwconv2d_bwd_input(cuda[3], cuda[1], ph, pw, "fft")
    dw, db = OPS.dwconv2d_bwd_weight(cuda[3], cuda[0], 31, 31, ph, pw, "fft")
    ref_dx, ref_dw, ref_db = grads64(x, weight, bias, (ph, pw), grad_out)
    for got, want in ((y, conv64(x, weight, bias, (ph, pw))), (dx, ref_dx), (dw, ref_dw), (db, ref_db)):
        assert max_rel_error(got, want) <= 1e-5


@pytest.mark.gpu
def test_cuda_deterministic_mode_leaves_fft_out_of_auto():
    x, w = torch.randn(1, 4, 56, 56, device="cuda"), torch.randn(4, 1, 51, 51, device="cuda")
    torch.use_deterministic_algorithms(True)
    try:
        plan = replk_ops.explain(x, w)
        assert "deterministic" in dict(plan.choices["fwd"].rejected)["fft"]
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.gpu
def test_cuda_graph_capture_runs_and_matches():
    x = torch.randn(1, 4, 40, 40, device="cuda")
    w = torch.randn(4, 1, 31, 31, device="cuda") / 31
    with torch.no_grad():
        eager = replk_ops.dwconv2d(x, w, backend="fft")
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            replk_ops.dwconv2d(x, w, backend="fft")  # warm-up outside the graph
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = replk_ops.dwconv2d(x, w, backend="fft")
        graph.replay()
    torch.testing.assert_close(captured, eager, rtol=1e-4, atol=1e-4)
