"""Property-based fuzzing of every backend against the float64 reference: random sizes
(maps smaller than the kernel included), rectangular and even kernels, explicit asymmetric
padding, layouts and strides, dtypes, with and without bias; output and all three gradients.

CI runs the bounded "ci" profile (the Triton kernels through the interpreter on CPU); pass
``--hypothesis-profile=long`` for thousands of examples on a GPU machine."""
import pytest
import torch
from hypothesis import given

import replk_ops
from conv_testing import assert_close_to_reference, conv64, grads64, make_input, torch_same_dtype
from fuzz_cases import conv_cases

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _backends():
    # on CPU this includes "triton" when its interpreter is on (conftest turns it on)
    return replk_ops.available_backends(DEVICE)


def _check(case, compute, what):
    """``compute(x, weight, bias, case, grad_out)`` returns the output and the gradients of x,
    weight and bias (None without bias) for one case; each must match the float64 reference."""
    dtype, pad = case["dtype"], case["pad"]
    x = make_input(case["n"], case["c"], case["h"], case["w"], dtype, DEVICE, case["layout"])
    weight = (torch.randn(case["c"], 1, case["kh"], case["kw"], dtype=torch.float64)
              / (case["kh"] * case["kw"]) ** 0.5).to(DEVICE, dtype)
    bias = torch.randn(case["c"], dtype=torch.float64).to(DEVICE, dtype) if case["bias"] else None
    out_shape = (case["n"], case["c"], case["h"] + 2 * pad[0] - case["kh"] + 1, case["w"] + 2 * pad[1] - case["kw"] + 1)
    grad_out = torch.randn(out_shape, dtype=torch.float64).to(DEVICE, dtype)
    got = compute(x, weight, bias, case, grad_out)
    ref = (conv64(x, weight, bias, pad),) + grads64(x, weight, bias, pad, grad_out)
    yard = torch_same_dtype(x, weight, bias, pad, grad_out) if dtype in (torch.float16, torch.bfloat16) \
        else (None,) * 4
    for name, g, r, t in zip(("output", "grad x", "grad weight", "grad bias"), got, ref, yard):
        if r is not None:
            assert_close_to_reference(g, r, dtype, t, f"{name} ({what}, {case})")


def through_autograd(backend):
    """A ``compute`` for _check: replk_ops.dwconv2d on ``backend`` and its backward."""
    def compute(x, weight, bias, case, grad_out):
        leaves = [None if t is None else t.requires_grad_() for t in (x, weight, bias)]
        y = replk_ops.dwconv2d(*leaves, case["padding"], backend=backend)
        y.backward(grad_out)
        return (y,) + tuple(None if t is None else t.grad for t in leaves)
    return compute


@pytest.mark.parametrize("backend", _backends())
def test_fuzz_against_float64(backend):
    @given(case=conv_cases(with_float64=backend == "direct"))
    def run(case):
        _check(case, through_autograd(backend), backend)

    run()
