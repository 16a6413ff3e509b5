"""Property-based fuzzing of every backend against the float64 reference: random sizes
(maps smaller than the kernel included), rectangular and even kernels, explicit asymmetric
padding, layouts and strides, dtypes, with and without bias; output and all three gradients.

CI runs the bounded "ci" profile (the Triton kernels through the interpreter on CPU); pass
``--hypothesis-profile=long`` for thousands of examples on a GPU machine."""
import pytest
import torch
from hypothesis import given, strategies as st

import replk_ops
from conv_testing import assert_close_to_reference, conv64, grads64, make_input, torch_same_dtype

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _backends():
    # on CPU this includes "triton" when its interpreter is on (conftest turns it on)
    return replk_ops.available_backends(DEVICE)


@st.composite
def conv_cases(draw, backend):
    dtypes = [torch.float32, torch.bfloat16, torch.float16]
    if backend == "reference":
        dtypes.append(torch.float64)
    dtype = draw(st.sampled_from(dtypes))
    kh, kw = draw(st.integers(1, 15)), draw(st.integers(1, 15))
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    if kh % 2 and kw % 2 and draw(st.booleans()):
        padding = "same"
        ph, pw = kh // 2, kw // 2
    else:
        ph, pw = draw(st.integers(0, kh)), draw(st.integers(0, kw))  # asymmetric: ph != pw often
        padding = (ph, pw)
    # an empty output is a documented ValueError, not a case to compare
    h = max(h, kh - 2 * ph)
    w = max(w, kw - 2 * pw)
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 4)), h=h, w=w, kh=kh, kw=kw, padding=padding,
                pad=(ph, pw), dtype=dtype, layout=draw(st.sampled_from(["nchw", "channels_last", "strided"])),
                bias=draw(st.booleans()))


def _check(backend, case):
    dtype, pad = case["dtype"], case["pad"]
    x = make_input(case["n"], case["c"], case["h"], case["w"], dtype, DEVICE, case["layout"]).requires_grad_()
    weight = (torch.randn(case["c"], 1, case["kh"], case["kw"], dtype=torch.float64)
              / (case["kh"] * case["kw"]) ** 0.5).to(DEVICE, dtype).requires_grad_()
    bias = torch.randn(case["c"], dtype=torch.float64).to(DEVICE, dtype).requires_grad_() if case["bias"] else None
    y = replk_ops.dwconv2d(x, weight, bias, case["padding"], backend=backend)
    grad_out = torch.randn(y.shape, dtype=torch.float64).to(DEVICE, dtype)
    y.backward(grad_out)
    ref = (conv64(x, weight, bias, pad),) + grads64(x, weight, bias, pad, grad_out)
    yard = torch_same_dtype(x, weight, bias, pad, grad_out) if dtype in (torch.float16, torch.bfloat16) \
        else (None,) * 4
    got = (y, x.grad, weight.grad, None if bias is None else bias.grad)
    for name, g, r, t in zip(("output", "grad x", "grad weight", "grad bias"), got, ref, yard):
        if r is not None:
            assert_close_to_reference(g, r, dtype, t, f"{name} ({backend}, {case})")


@pytest.mark.parametrize("backend", _backends())
def test_fuzz_against_float64(backend):
    @given(case=conv_cases(backend))
    def run(case):
        _check(backend, case)

    run()
