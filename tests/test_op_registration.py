"""The registered ops behave like built-in ops: opcheck, torch.compile, autocast, explain."""
import pytest
import torch
import torch.nn.functional as F

import replk_ops
from conv_testing import assert_compiled_matches_eager, max_rel_error

OPS = torch.ops.replk_ops


def _samples():
    x = torch.randn(2, 3, 9, 8)
    w = torch.randn(3, 1, 5, 3)
    b = torch.randn(3)
    dy = torch.randn(2, 3, 9, 8)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    return [
        (OPS.dwconv2d_fwd, (x.requires_grad_(), w.requires_grad_(), b.requires_grad_(), 2, 1, "auto")),
        (OPS.dwconv2d_fwd, (x_cl, w, None, 2, 1, "direct")),
        (OPS.dwconv2d_fwd, (x, w, None, 0, 3, "direct")),
        (OPS.dwconv2d_bwd_input, (dy.requires_grad_(), w, 2, 1, "direct")),
        (OPS.dwconv2d_bwd_input, (dy.contiguous(memory_format=torch.channels_last), w, 2, 1, "direct")),
        (OPS.dwconv2d_bwd_weight, (dy, x, 5, 3, 2, 1, "direct")),
        (OPS.dwconv2d_bwd_weight, (dy.detach().requires_grad_(), x.detach().requires_grad_(), 5, 3, 2, 1, "auto")),
    ]


@pytest.mark.parametrize("index", range(7))
def test_opcheck(index):
    op, args = _samples()[index]
    torch.library.opcheck(op, args)


def test_compile_fullgraph_matches_eager():
    conv = replk_ops.LargeKernelDWConv2d(4, 9)
    assert_compiled_matches_eager(conv, torch.randn(2, 4, 12, 11, requires_grad=True))


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_autocast_runs_in_autocast_dtype_like_conv2d(dtype):
    x = torch.randn(1, 4, 10, 10)
    w = torch.randn(4, 1, 7, 7)
    with torch.autocast("cpu", dtype=dtype):
        ours = replk_ops.dwconv2d(x, w)
        theirs = F.conv2d(x, w, padding=3, groups=4)
    assert ours.dtype == theirs.dtype == dtype
    assert max_rel_error(ours, theirs.float()) < 1e-2


def test_autocast_leaves_float64_alone():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    w = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert replk_ops.dwconv2d(x, w).dtype == torch.float64


def test_autocast_gradients_reach_float32_parameters():
    conv = replk_ops.LargeKernelDWConv2d(4, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(torch.randn(2, 4, 9, 9))
    y.float().sum().backward()
    assert conv.weight.grad.dtype == torch.float32 and torch.isfinite(conv.weight.grad).all()


def test_explain_on_cpu():
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 31, 31)
    report = replk_ops.explain(x, w)
    # NCHW with a 31x31 kernel: PyTorch's own NCHW path is a naive loop, so a rule settles it
    assert report.backend == "direct"
    assert set(report.reasons) == {"torch", "direct", "cpp", "triton", "fft", "cuda"}
    assert "CUDA tensors only" in report.reasons["cuda"]
    assert "by rule" in report.reasons["direct"]
    assert set(report.choices) == {"fwd", "bwd_input", "bwd_weight"}
    assert "backend 'direct'" in str(report)


def test_explain_shows_the_autocast_dtype():
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 7, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        report = replk_ops.explain(x, w)
    assert report.problem.dtype == torch.bfloat16 and "bfloat16" in str(report)


def test_environment_variable_overrides_auto(planner_env):
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 7, 7)
    planner_env("REPLK_OPS_BACKEND", "direct")
    assert replk_ops.explain(x, w).requested == "direct"
    planner_env("REPLK_OPS_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match="'cuda' cannot run"):
        replk_ops.dwconv2d(x, w)


def test_the_old_name_reference_still_selects_direct_with_a_warning(planner_env, monkeypatch):
    from replk_ops import catalog

    monkeypatch.setattr(catalog, "_WARNED", set())
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 7, 7)
    with pytest.warns(FutureWarning, match="'reference' is now called 'direct'"):
        y = replk_ops.dwconv2d(x, w, backend="reference")
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w, padding=3, groups=4))
    assert replk_ops.LargeKernelDWConv2d(4, 7, backend="reference").backend == "direct"
    planner_env("REPLK_OPS_BACKEND", "reference")
    assert replk_ops.explain(x, w).requested == "direct"


def test_available_backends_on_cpu():
    assert "direct" in replk_ops.available_backends("cpu")
    assert "cuda" not in replk_ops.available_backends("cpu")
