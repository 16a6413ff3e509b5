"""The compiled CPU kernels (replk_ops._cpu) themselves: every element written (outputs filled
with NaN beforehand), the vector blocks and their scalar tails, several threads, float64 to
rounding; and what the package does without them. Their passes inside the ops run in the
correctness matrices (test_direct_correctness.py, test_dilation.py)."""
import importlib

import pytest
import torch
import torch.nn.functional as F

import replk_ops
from replk_ops import planner
from replk_ops._checks import output_size
from replk_ops.backends.cpp import loader as cpp
from conv_testing import conv64, grads64, needs_cpp

# (N, C, H, W, kh, kw, ph, pw, dh, dw): maps whose padded planes end inside and on a vector block,
# one-pixel maps, padding larger than the span, kernels larger than the map.
SHAPES = [
    (1, 3, 1, 1, 3, 3, 2, 2, 1, 1),
    (2, 5, 7, 9, 3, 3, 3, 3, 3, 3),
    (1, 4, 16, 16, 5, 5, 2, 2, 1, 1),
    (3, 2, 13, 29, 7, 3, 6, 4, 2, 4),
    (1, 2, 6, 5, 3, 3, 9, 1, 5, 2),
    (2, 3, 40, 33, 4, 6, 0, 0, 2, 1),
    (1, 1, 5, 4, 9, 9, 4, 4, 1, 1),
]


def _module():
    if cpp.UNAVAILABLE is not None:
        pytest.skip(cpp.UNAVAILABLE)
    return importlib.import_module("replk_ops._cpu")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("threads", [1, 2])
def test_every_element_written_and_close_to_float64(shape, dtype, threads):
    module = _module()
    n, c, h, w, kh, kw, ph, pw, dh, dw = shape
    x = torch.randn(n, c, h, w, dtype=dtype)
    weight = torch.randn(c, 1, kh, kw, dtype=dtype)
    bias = torch.randn(c, dtype=dtype)
    out = torch.full((n, c) + output_size(h, w, kh, kw, ph, pw, (dh, dw)), float("nan"), dtype=dtype)
    grad_out = torch.randn(out.shape, dtype=dtype)
    grad_weight = torch.full((c, 1, kh, kw), float("nan"), dtype=dtype)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert module.forward(x, weight, bias, out, ph, pw, dh, dw)
        assert module.weight_grad(grad_out, x, grad_weight, ph, pw, dh, dw)
    finally:
        torch.set_num_threads(saved)
    want = conv64(x, weight, bias, (ph, pw), (dh, dw))
    _, want_weight, _ = grads64(x, weight, bias, (ph, pw), grad_out, (dh, dw))
    tolerance = 1e-12 if dtype == torch.float64 else 2e-5
    for got, expected in ((out, want), (grad_weight, want_weight)):
        assert not got.isnan().any()
        scale = expected.abs().max().clamp_min(1.0)
        assert ((got.double() - expected).abs().max() / scale).item() < tolerance


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("channels", [3, 8, 21])  # under, at and past a vector of channels
@pytest.mark.parametrize("threads", [1, 2])
def test_channels_last_kernels_write_every_element_and_match_float64(shape, channels, threads):
    module = _module()
    n, _, h, w, kh, kw, ph, pw, dh, dw = shape
    cl = torch.channels_last
    x = torch.randn(n, channels, h, w).contiguous(memory_format=cl)
    weight, bias = torch.randn(channels, 1, kh, kw), torch.randn(channels)
    out = torch.full((n, channels) + output_size(h, w, kh, kw, ph, pw, (dh, dw)), float("nan")).contiguous(
        memory_format=cl)
    grad_out = torch.randn(out.shape).contiguous(memory_format=cl)
    taps = torch.full((kh * kw, channels), float("nan"))
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert module.forward_nhwc(x, weight.reshape(channels, -1).t().contiguous(), bias, out, kh, kw, ph, pw, dh, dw)
        assert module.weight_grad_nhwc(grad_out, x, taps, kh, kw, ph, pw, dh, dw)
    finally:
        torch.set_num_threads(saved)
    want = conv64(x, weight, bias, (ph, pw), (dh, dw))
    _, want_weight, _ = grads64(x, weight, bias, (ph, pw), grad_out, (dh, dw))
    for got, expected in ((out, want), (taps.t().reshape(channels, 1, kh, kw), want_weight)):
        assert not got.isnan().any()
        scale = expected.abs().max().clamp_min(1.0)
        assert ((got.double() - expected).abs().max() / scale).item() < 2e-5


def test_other_dtypes_are_refused_without_writing():
    module = _module()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float16)
    out = torch.full((1, 2, 5, 5), float("nan"), dtype=torch.float16)
    assert module.forward(x, torch.randn(2, 1, 3, 3, dtype=torch.float16), torch.empty(0), out, 1, 1, 1, 1) is False
    assert out.isnan().all()


@needs_cpp
def test_auto_runs_dilated_cpu_calls_on_them_and_explain_names_the_instruction_set():
    x, weight = torch.randn(1, 8, 14, 14), torch.randn(8, 1, 3, 3)
    plan = replk_ops.explain(x, weight, padding=5, dilation=5)
    assert {choice.implementation.name for choice in plan.choices.values()} == {"cpp"}
    assert cpp.instruction_set() in str(plan)


def test_without_them_dilated_calls_run_on_direct_and_explain_says_why(monkeypatch):
    why = "the CPU kernel library replk_ops._cpu was not built: REPLK_OPS_SKIP_CPU_BUILD=1 was set at install time"
    monkeypatch.setattr(cpp, "UNAVAILABLE", why)
    planner.reset()
    try:
        x, weight = torch.randn(1, 8, 14, 14, requires_grad=True), torch.randn(8, 1, 3, 3, requires_grad=True)
        plan = replk_ops.explain(x, weight, padding=5, dilation=5)
        assert plan.choices["bwd_weight"].implementation.name == "direct"
        assert why in str(plan)
        y = replk_ops.dwconv2d(x, weight, None, 5, 5)
        torch.testing.assert_close(y, F.conv2d(x, weight, None, 1, 5, 5, 8))
        with pytest.raises(RuntimeError, match="REPLK_OPS_SKIP_CPU_BUILD"):
            replk_ops.dwconv2d(x, weight, None, 5, 5, backend="cpp")
    finally:
        planner.reset()
