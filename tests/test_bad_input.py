"""Every invalid call raises a clear Python exception naming the argument, before any kernel."""
import os

import pytest
import torch

import replk_ops

X = torch.randn(2, 4, 10, 10)
W = torch.randn(4, 1, 5, 5)
B = torch.randn(4)

# (description, call, exception, text the message must contain)
CASES = [
    ("x not a tensor", lambda: replk_ops.dwconv2d([[1.0]], W), TypeError, "x"),
    ("x rank 3", lambda: replk_ops.dwconv2d(torch.randn(4, 10, 10), W), ValueError, "x: expected a 4-D"),
    ("x rank 5", lambda: replk_ops.dwconv2d(torch.randn(1, 4, 2, 10, 10), W), ValueError, "x: expected a 4-D"),
    ("weight rank 3", lambda: replk_ops.dwconv2d(X, torch.randn(4, 5, 5)), ValueError, "weight"),
    ("weight not a tensor", lambda: replk_ops.dwconv2d(X, 3.0), ValueError, "weight"),
    ("channel mismatch", lambda: replk_ops.dwconv2d(X, torch.randn(3, 1, 5, 5)), ValueError,
     "weight: expected shape (4, 1, kh, kw)"),
    ("weight not depthwise", lambda: replk_ops.dwconv2d(X, torch.randn(4, 2, 5, 5)), ValueError,
     "got (4, 2, 5, 5)"),
    ("empty kernel", lambda: replk_ops.dwconv2d(X, torch.randn(4, 1, 0, 5), padding=1), ValueError, "weight"),
    ("even kernel with same", lambda: replk_ops.dwconv2d(X, torch.randn(4, 1, 4, 5)), ValueError,
     "padding: \"same\" needs odd kernel sizes"),
    ("negative padding", lambda: replk_ops.dwconv2d(X, W, padding=-1), ValueError, "padding: expected non-negative"),
    ("negative padding pair", lambda: replk_ops.dwconv2d(X, W, padding=(1, -2)), ValueError, "(1, -2)"),
    ("unknown padding string", lambda: replk_ops.dwconv2d(X, W, padding="full"), ValueError, "'full'"),
    ("padding of three", lambda: replk_ops.dwconv2d(X, W, padding=(1, 2, 3)), TypeError, "padding"),
    ("float padding", lambda: replk_ops.dwconv2d(X, W, padding=1.5), TypeError, "padding"),
    ("output would be empty", lambda: replk_ops.dwconv2d(torch.randn(1, 4, 3, 3), W, padding=0), ValueError,
     "smaller than the kernel"),
    ("bias wrong length", lambda: replk_ops.dwconv2d(X, W, torch.randn(5)), ValueError, "bias: expected shape (4,)"),
    ("bias 2-D", lambda: replk_ops.dwconv2d(X, W, torch.randn(4, 1)), ValueError, "bias"),
    ("bias not a tensor", lambda: replk_ops.dwconv2d(X, W, 1.0), TypeError, "bias"),
    ("weight dtype differs", lambda: replk_ops.dwconv2d(X, W.double()), TypeError,
     "weight: expected dtype torch.float32"),
    ("bias dtype differs", lambda: replk_ops.dwconv2d(X, W, B.half()), TypeError, "bias: expected dtype"),
    ("integer x", lambda: replk_ops.dwconv2d(X.long(), W.long()), TypeError, "x: expected a floating-point"),
    ("bool x", lambda: replk_ops.dwconv2d(X > 0, W > 0), TypeError, "torch.bool"),
    ("complex x", lambda: replk_ops.dwconv2d(X.to(torch.complex64), W.to(torch.complex64)), TypeError,
     "complex64"),
    ("integer weight", lambda: replk_ops.dwconv2d(X, W.int()), TypeError, "weight"),
    ("weight on meta device", lambda: replk_ops.dwconv2d(X, W.to("meta")), RuntimeError,
     "weight: expected a tensor on cpu"),
    ("bias on meta device", lambda: replk_ops.dwconv2d(X, W, B.to("meta")), RuntimeError, "bias"),
    ("unknown backend", lambda: replk_ops.dwconv2d(X, W, backend="cudnn"), ValueError, "backend"),
    ("backend not a string", lambda: replk_ops.dwconv2d(X, W, backend=None), ValueError, "backend"),
    ("unavailable backend", lambda: replk_ops.dwconv2d(X, W, backend="cuda"), RuntimeError,
     "backend: 'cuda' cannot run this call"),
    ("module: zero channels", lambda: replk_ops.LargeKernelDWConv2d(0, 31), ValueError, "channels"),
    ("module: even kernel same", lambda: replk_ops.LargeKernelDWConv2d(8, 30), ValueError, "padding"),
    ("module: kernel zero", lambda: replk_ops.LargeKernelDWConv2d(8, 0), ValueError, "kernel_size"),
    ("module: kernel string", lambda: replk_ops.LargeKernelDWConv2d(8, "31"), TypeError, "kernel_size"),
    ("module: bad backend", lambda: replk_ops.LargeKernelDWConv2d(8, 31, backend="x"), ValueError, "backend"),
    ("from_conv2d: strided", lambda: replk_ops.LargeKernelDWConv2d.from_conv2d(
        torch.nn.Conv2d(4, 4, 7, stride=2, groups=4)), ValueError, "stride"),
    ("from_conv2d: not depthwise", lambda: replk_ops.LargeKernelDWConv2d.from_conv2d(
        torch.nn.Conv2d(4, 8, 7)), ValueError, "not depthwise"),
    ("from_conv2d: dilated same, even span", lambda: replk_ops.LargeKernelDWConv2d.from_conv2d(
        torch.nn.Conv2d(4, 4, 4, dilation=3, padding="same", groups=4)), ValueError, "dilation (3, 3)"),
    ("from_conv2d: reflect", lambda: replk_ops.LargeKernelDWConv2d.from_conv2d(
        torch.nn.Conv2d(4, 4, 7, groups=4, padding=3, padding_mode="reflect")), ValueError, "padding_mode"),
    ("convert: not a module", lambda: replk_ops.convert("model"), TypeError, "model"),
    ("convert: bad min size", lambda: replk_ops.convert(torch.nn.Sequential(), min_kernel_size=0),
     ValueError, "min_kernel_size"),
    ("explain: even kernel", lambda: replk_ops.explain(X, torch.randn(4, 1, 4, 4)), ValueError, "padding"),
]


@pytest.mark.parametrize("call,exception,text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises(call, exception, text):
    with pytest.raises(exception) as info:
        call()
    assert text in str(info.value)


@pytest.mark.parametrize("value", ["cudnn", "TRITON", "1"])
def test_bad_environment_backend(planner_env, value):
    planner_env("REPLK_OPS_BACKEND", value)
    with pytest.raises(ValueError, match="REPLK_OPS_BACKEND"):
        replk_ops.dwconv2d(X, W)


@pytest.mark.parametrize("value", ["yes", "off", "2", "true"])
def test_bad_environment_autotune(planner_env, value):
    planner_env("REPLK_OPS_AUTOTUNE", value)
    with pytest.raises(ValueError, match="REPLK_OPS_AUTOTUNE: expected 0 or 1"):
        replk_ops.dwconv2d(X, W)


def test_environment_is_read_once_until_reset(planner_env):
    """The hot path reads no environment; reset() makes a new value count."""
    replk_ops.dwconv2d(X, W)
    os.environ["REPLK_OPS_BACKEND"] = "cudnn"
    try:
        replk_ops.dwconv2d(X, W)  # not read again
        with pytest.raises(ValueError, match="REPLK_OPS_BACKEND"):
            replk_ops.reset()
            replk_ops.dwconv2d(X, W)
    finally:
        del os.environ["REPLK_OPS_BACKEND"]


@pytest.mark.parametrize("name,value", [("REPLK_OPS_BACKEND", ""), ("REPLK_OPS_BACKEND", "  "),
                                        ("REPLK_OPS_AUTOTUNE", "0"), ("REPLK_OPS_AUTOTUNE", "1")])
def test_accepted_environment_values(planner_env, name, value):
    planner_env(name, value)
    torch.testing.assert_close(replk_ops.dwconv2d(X, W), torch.nn.functional.conv2d(X, W, padding=2, groups=4))


def test_registered_op_validates_too():
    with pytest.raises(ValueError, match="weight: expected shape"):
        torch.ops.replk_ops.dwconv2d_fwd(X, torch.randn(3, 1, 5, 5), None, 2, 2, "auto")


def test_valid_call_after_errors_still_works():
    for _, call, exception, _ in CASES:
        with pytest.raises(exception):
            call()
    y = replk_ops.dwconv2d(X, W, B)
    assert torch.allclose(y, torch.nn.functional.conv2d(X, W, B, padding=2, groups=4), atol=1e-5)
