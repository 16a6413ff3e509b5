"""The CUDA C++ extension. Without a GPU: it was built, registers its ops and is rejected with a
reason for CPU tensors. With one: every kernel path against the float64 reference, with outputs
and workspaces poisoned with NaN so an unwritten element fails."""
import json
import os

import pytest
import torch

import replk_ops
from replk_ops.backends.cuda import loader as _extension
from replk_ops._checks import padding_pair
from conv_testing import (
    KERNEL_PATH_CASES, assert_close_to_reference, conv64, grads64, make_input, torch_same_dtype,
)

needs_extension = pytest.mark.skipif(not _extension.STATUS.loaded, reason=f"replk_ops._C: {_extension.STATUS.reason}")

CASES = KERNEL_PATH_CASES + [
    (2, 4, 67, 75, 31, 31, "same"),     # several 64-row tiles and 32/64-column tiles
    (1, 3, 7, 7, 13, 13, "same"),       # RepLKNet stage 4 map
    (1, 2, 20, 20, 63, 63, "same"),     # the largest square kernel
]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture
def poisoned(monkeypatch):
    monkeypatch.setenv("REPLK_OPS_POISON_OUTPUTS", "1")


def test_extension_built_when_a_toolkit_was_present():
    """CI builds with nvcc present: the extension must then have loaded, with its kernels."""
    if os.environ.get("REPLK_OPS_EXPECT_EXTENSION") != "1":
        pytest.skip("set REPLK_OPS_EXPECT_EXTENSION=1 where the build must have produced replk_ops._C")
    assert _extension.STATUS.loaded, _extension.STATUS.reason
    for op in ("fwd", "bwd_input", "bwd_weight"):
        assert hasattr(torch.ops.replk_ops_C, op)


@needs_extension
def test_schemas_and_cpu_rejection():
    schema = str(torch.ops.replk_ops_C.fwd.default._schema)
    assert "Tensor? bias" in schema and 'str algo="auto"' in schema
    x, w = torch.randn(1, 2, 8, 8), torch.randn(2, 1, 3, 3)
    assert "CUDA tensors only" in replk_ops.explain(x, w).reasons["cuda"]
    with pytest.raises(RuntimeError, match="'cuda' cannot run"):
        replk_ops.dwconv2d(x, w, backend="cuda")
    with pytest.raises(NotImplementedError):  # the op itself has no CPU kernel
        torch.ops.replk_ops_C.fwd(x, w, None, 1, 1)


@needs_extension
def test_algo_table_without_a_gpu():
    """The extension's algo table is a plain op: readable on any machine, one row per (pass, algo)."""
    rows = json.loads(torch.ops.replk_ops_C.algo_table())
    assert {row["pass"] for row in rows} == {"fwd", "bwd_input", "bwd_weight"}
    assert all(row["verified_on_gpu"] for row in rows if row["auto"])
    assert {row["max_kernel"] for row in rows} == {63}


def _table_algos(pass_, dtype):
    """Every algo of the extension's table that takes dtype on this GPU."""
    major, minor = torch.cuda.get_device_capability()
    return [row["algo"] for row in json.loads(torch.ops.replk_ops_C.algo_table())
            if row["pass"] == pass_ and str(dtype)[6:] in row["dtypes"] and row["min_cc"] <= 10 * major + minor]


def _algos(dtype):
    """Every forward kernel: direct tiles (unrolled, generic, two-row), tensor-core tiles (strided-row,
    block, warp)."""
    return _table_algos("fwd", dtype)


def _weight_algos(dtype):
    """Every weight-gradient kernel: direct (8 and 16 taps per thread), and tensor cores for fp16/bf16."""
    return _table_algos("bwd_weight", dtype)


@pytest.mark.gpu
@needs_extension
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-p{c[6]}")
def test_cuda_matches_float64(case, dtype, poisoned):
    n, c, h, w, kh, kw, padding = case
    pad = padding_pair(padding, (kh, kw))
    x = make_input(n, c, h, w, dtype, device="cuda")
    weight = (torch.randn(c, 1, kh, kw, dtype=torch.float64) / (kh * kw) ** 0.5).to("cuda", dtype)
    bias = torch.randn(c, dtype=torch.float64).to("cuda", dtype)
    ho, wo = h + 2 * pad[0] - kh + 1, w + 2 * pad[1] - kw + 1
    grad_out = torch.randn(n, c, ho, wo, dtype=torch.float64).to("cuda", dtype)
    ref_y = conv64(x, weight, bias, pad)
    ref_dx, ref_dw, ref_db = grads64(x, weight, bias, pad, grad_out)
    yard = torch_same_dtype(x, weight, bias, pad, grad_out) if dtype != torch.float32 else (None,) * 4
    ops = torch.ops.replk_ops_C
    for algo in _algos(dtype):
        y = ops.fwd(x, weight, bias, pad[0], pad[1], algo)
        dx = ops.bwd_input(grad_out, weight, pad[0], pad[1], algo)
        assert_close_to_reference(y, ref_y, dtype, yard[0], f"output ({algo})")
        assert_close_to_reference(dx, ref_dx, dtype, yard[1], f"grad x ({algo})")
    for algo in _weight_algos(dtype):
        dw, db = ops.bwd_weight(grad_out, x, kh, kw, pad[0], pad[1], False, algo)
        assert_close_to_reference(dw, ref_dw, dtype, yard[2], f"grad weight ({algo})")
        assert_close_to_reference(db, ref_db, dtype, yard[3], f"grad bias ({algo})")


@pytest.mark.gpu
@needs_extension
@pytest.mark.parametrize("layout", ["channels_last", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_cuda_layouts_through_autograd(layout, dtype, poisoned):
    n, c, h, w, k = 2, 5, 23, 35, 9
    x = make_input(n, c, h, w, dtype, device="cuda", layout=layout).requires_grad_()
    weight = (torch.randn(c, 1, k, k, dtype=torch.float64) / k).to("cuda", dtype).requires_grad_()
    bias = torch.randn(c, dtype=torch.float64).to("cuda", dtype).requires_grad_()
    y = replk_ops.dwconv2d(x, weight, bias, backend="cuda")
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    pad = (k // 2, k // 2)
    ref_y = conv64(x, weight, bias, pad)
    ref_dx, ref_dw, ref_db = grads64(x, weight, bias, pad, grad_out)
    yard = torch_same_dtype(x, weight, bias, pad, grad_out) if dtype != torch.float32 else (None,) * 4
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert x.grad.is_contiguous(memory_format=torch.channels_last)
    assert_close_to_reference(y, ref_y, dtype, yard[0], "output")
    assert_close_to_reference(x.grad, ref_dx, dtype, yard[1], "grad x")
    assert_close_to_reference(weight.grad, ref_dw, dtype, yard[2], "grad weight")
    assert_close_to_reference(bias.grad, ref_db, dtype, yard[3], "grad bias")


@pytest.mark.gpu
@needs_extension
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_cuda_weight_gradient_is_bitwise_deterministic(dtype):
    x = torch.randn(8, 16, 56, 56, device="cuda", dtype=dtype)
    grad_out = torch.randn_like(x)
    for algo in _weight_algos(dtype):
        first = torch.ops.replk_ops_C.bwd_weight(grad_out, x, 31, 31, 15, 15, True, algo)
        second = torch.ops.replk_ops_C.bwd_weight(grad_out, x, 31, 31, 15, 15, True, algo)
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]), algo


@pytest.mark.gpu
@needs_extension
def test_cuda_errors_are_exceptions_and_leave_the_device_usable():
    x = torch.randn(1, 4, 16, 16, device="cuda")
    ops = torch.ops.replk_ops_C
    with pytest.raises(RuntimeError, match="weight: expected shape"):
        ops.fwd(x, torch.randn(3, 1, 5, 5, device="cuda"), None, 2, 2)
    with pytest.raises(RuntimeError, match="kernel size"):
        ops.fwd(x, torch.randn(4, 1, 65, 65, device="cuda"), None, 32, 32)
    with pytest.raises(RuntimeError, match="x: expected float32"):
        ops.fwd(x.double(), torch.randn(4, 1, 5, 5, device="cuda").double(), None, 2, 2)
    with pytest.raises(RuntimeError, match="algo"):
        ops.fwd(x, torch.randn(4, 1, 5, 5, device="cuda"), None, 2, 2, "fast")
    with pytest.raises(RuntimeError, match="algo: \"mma\" needs"):
        ops.fwd(x, torch.randn(4, 1, 5, 5, device="cuda"), None, 2, 2, "mma")
    with pytest.raises(RuntimeError, match="algo: \"mma\" needs"):
        ops.bwd_weight(x, x, 5, 5, 2, 2, False, "mma")  # fp32
    with pytest.raises(RuntimeError, match="algo: expected"):
        ops.bwd_weight(x, x, 5, 5, 2, 2, False, "fast")
    y = ops.fwd(x, torch.randn(4, 1, 5, 5, device="cuda"), None, 2, 2)
    torch.cuda.synchronize()
    assert torch.isfinite(y).all()


@pytest.mark.gpu
@needs_extension
def test_cuda_respects_the_current_stream():
    x = torch.randn(4, 8, 56, 56, device="cuda")
    w = torch.randn(8, 1, 31, 31, device="cuda")
    expected = torch.ops.replk_ops_C.fwd(x, w, None, 15, 15)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = torch.ops.replk_ops_C.fwd(x, w, None, 15, 15)
    torch.cuda.current_stream().wait_stream(stream)
    assert torch.equal(got, expected)


@pytest.mark.gpu
@needs_extension
def test_auto_measures_the_gpu_backends_once_and_explains():
    from replk_ops import planner

    replk_ops.reset()
    x = torch.randn(2, 8, 28, 28, device="cuda", dtype=torch.float16)
    w = torch.randn(8, 1, 13, 13, device="cuda", dtype=torch.float16)
    candidates = replk_ops.available_backends("cuda")
    if not {"cuda", "triton"} <= set(candidates):
        pytest.skip(f"needs both GPU backends, have {candidates}")
    before = replk_ops.explain(x, w)
    assert "until the first fwd call" in before.reasons[before.backend]
    replk_ops.dwconv2d(x, w)
    after = replk_ops.explain(x, w)
    assert "measured on first use" in after.reasons[after.backend]
    assert "triton" in after.reasons[after.backend] and "torch" in after.reasons[after.backend]
    # another batch size is the same kind: no new measurement
    replk_ops.dwconv2d(x.repeat(3, 1, 1, 1), w)
    assert len([k for k in planner._MEASURED if k[1] == "fwd"]) == 1
