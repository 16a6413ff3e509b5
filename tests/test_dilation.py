"""Dilated depthwise convs: every pass and route against float64, the ops' machinery (autograd,
opcheck, compile, export), the modules and convert, the UniRepLKNet-style block, bad input."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import replk_ops
from replk_ops import catalog
from replk_ops._checks import dilation_pair, output_size, padding_pair
from replk_ops.backends.space_to_batch import SpaceToBatch
from replk_ops.backends.torch_native import TorchNativeRunner
from replk_ops.models import DilatedReparamBlock
from replk_ops.problem import Problem
from conv_testing import (
    CPU_BACKENDS, needs_cpp,
    assert_close_to_reference, assert_compiled_matches_eager, conv64, grads64, make_input, needs_fx_functional,
    randomize_bn, torch_same_dtype,
)

OPS = torch.ops.replk_ops

# (N, C, H, W, kh, kw, padding, dilation): dilations 1 to 5 and (2, 3), rectangular and even
# kernels, spans larger than the map, explicit, "same", "valid" and wider-than-span padding.
CASES = [
    (2, 3, 9, 11, 3, 3, "same", 2),
    (1, 4, 13, 12, 5, 5, "same", 3),
    (1, 2, 12, 10, 3, 3, "same", 4),
    (2, 3, 11, 11, 3, 3, "same", 5),
    (1, 3, 10, 9, 7, 5, "same", (2, 3)),
    (1, 2, 6, 5, 3, 3, "same", 5),          # span 11 over a 6x5 map
    (1, 2, 9, 8, 4, 2, (3, 1), (2, 3)),     # even kernel, explicit padding
    (1, 2, 5, 4, 3, 3, (6, 5), 2),          # padding wider than the span
    (2, 3, 10, 8, 3, 3, "valid", 3),
    (1, 3, 8, 7, 5, 3, "same", 1),
]
LAYOUTS = ["nchw", "channels_last", "strided"]
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


def _case_id(c):
    return "x".join(map(str, c[:6])) + f"-p{c[6]}-d{c[7]}".replace(" ", "")


def _tensors(case, dtype, layout):
    n, c, h, w, kh, kw, padding, dilation = case
    dil = dilation_pair(dilation)
    pad = padding_pair(padding, (kh, kw), dilation=dil)
    x = make_input(n, c, h, w, dtype, layout=layout)
    weight = (torch.randn(c, 1, kh, kw, dtype=torch.float64) / (kh * kw) ** 0.5).to(dtype)
    bias = torch.randn(c, dtype=torch.float64).to(dtype)
    grad_out = make_input(n, c, *output_size(h, w, kh, kw, *pad, dil), dtype, layout=layout)
    return x, weight, bias, grad_out, pad, dil


def _check_all(got, x, weight, bias, grad_out, pad, dil, dtype):
    ref = (conv64(x, weight, bias, pad, dil),) + grads64(x, weight, bias, pad, grad_out, dil)
    half = dtype in (torch.float16, torch.bfloat16)
    yard = torch_same_dtype(x, weight, bias, pad, grad_out, dil) if half else (None,) * 4
    for actual, expected, yardstick, what in zip(got, ref, yard, ("output", "grad x", "grad weight", "grad bias")):
        assert actual.shape == expected.shape, what
        assert_close_to_reference(actual, expected, dtype, yardstick, what)


def _train_step(x, weight, bias, padding, dilation, backend, grad_out):
    x, weight, bias = (t.detach().clone().requires_grad_() for t in (x, weight, bias))
    y = replk_ops.dwconv2d(x, weight, bias, padding, dilation, backend=backend)
    y.backward(grad_out)
    return y, x.grad, weight.grad, bias.grad


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_every_pass_against_float64(case, layout, dtype, backend):
    x, weight, bias, grad_out, pad, dil = _tensors(case, dtype, layout)
    y, dx, dw, db = _train_step(x, weight, bias, case[6], case[7], backend, grad_out)
    assert y.dtype == dtype
    assert y.is_contiguous(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)
    _check_all((y, dx, dw, db), x, weight, bias, grad_out, pad, dil, dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_auto_and_each_registered_op_against_float64(case, layout):
    x, weight, bias, grad_out, pad, dil = _tensors(case, torch.float32, layout)
    _check_all(_train_step(x, weight, bias, case[6], case[7], "auto", grad_out), x, weight, bias, grad_out, pad, dil,
               torch.float32)
    kh, kw = weight.shape[2:]
    for backend in catalog.available_backends("cpu"):
        if backend in ("triton", "fft"):  # the interpreter (its own tests); fft runs undilated kernels only
            continue
        y = OPS.dwconv2d_fwd(x, weight, bias, *pad, backend, *dil)
        dx = OPS.dwconv2d_bwd_input(grad_out, weight, *pad, backend, *dil)
        dw, db = OPS.dwconv2d_bwd_weight(grad_out, x, kh, kw, *pad, backend, *dil)
        _check_all((y, dx, dw, db), x, weight, bias, grad_out, pad, dil, torch.float32)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_space_to_batch_route_against_float64(case):
    """The decomposition that lets undilated kernels (Triton, CUDA) run dilated convs, on PyTorch's
    own undilated conv, in float64."""
    x, weight, bias, grad_out, pad, dil = _tensors(case, torch.float64, "strided")
    route = SpaceToBatch(TorchNativeRunner())
    y = route.fwd(x, weight, bias, *pad, dil)
    dx = route.bwd_input(grad_out, weight, *pad, dil)
    dw, db = route.bwd_weight(grad_out, x, *weight.shape[2:], *pad, dil)
    _check_all((y, dx, dw, db), x, weight, bias, grad_out, pad, dil, torch.float64)


@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[5], CASES[6]], ids=_case_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=lambda d: str(d)[6:])
def test_triton_through_space_to_batch(case, dtype):
    """backend="triton" with dilation: the undilated Triton kernels on the sub-grids (on CPU through
    the Triton interpreter)."""
    pytest.importorskip("triton")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, weight, bias, grad_out, pad, dil = (t.to(device) if isinstance(t, torch.Tensor) else t
                                           for t in _tensors(case, dtype, "nchw"))
    _check_all(_train_step(x, weight, bias, case[6], case[7], "triton", grad_out), x, weight, bias, grad_out, pad,
               dil, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda", "triton", "torch", "auto"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=lambda d: str(d)[6:])
def test_gpu_routes_against_float64(case, dtype, backend):
    x, weight, bias, grad_out, pad, dil = (t.cuda() if isinstance(t, torch.Tensor) else t
                                           for t in _tensors(case, dtype, "channels_last"))
    _check_all(_train_step(x, weight, bias, case[6], case[7], backend, grad_out), x, weight, bias, grad_out, pad,
               dil, dtype)


def test_auto_never_picks_space_to_batch_on_cuda_and_explain_names_the_dilation():
    cuda_problem = Problem("cuda:0", torch.float16, "nchw", True, 8, 28, 28, 3, 3, 5, 5, False, 5, 5)
    for impl in catalog.implementations():
        why = impl.auto_rejection(cuda_problem)
        if impl.space_to_batch and "cuda" in impl.auto_devices:
            assert "space-to-batch" in why
        elif impl.name == "torch":  # PyTorch's own path runs dilation natively
            assert why is None
    assert catalog.by_name("triton").auto_rejection(cuda_problem._replace(dh=1, dw=1)) is None
    plan = replk_ops.explain(torch.randn(1, 2, 9, 9), torch.randn(2, 1, 3, 3), dilation=(2, 3))
    assert "with dilation (2, 3)" in str(plan) and plan.problem.dilation == (2, 3)
    assert plan.problem.kind("fwd") != plan.problem._replace(dh=1, dw=1).kind("fwd")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradcheck_and_gradgradcheck_float64(backend):
    x = torch.randn(1, 2, 8, 7, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 1, 3, 2, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def conv(a, b, c):
        return replk_ops.dwconv2d(a, b, c, (2, 1), (2, 3), backend=backend)

    assert torch.autograd.gradcheck(conv, (x, weight, bias))
    assert torch.autograd.gradgradcheck(conv, (x, weight, bias))


def _op_samples():
    x, w, b = torch.randn(2, 3, 10, 9), torch.randn(3, 1, 3, 2), torch.randn(3)
    dy = torch.randn(2, 3, *output_size(10, 9, 3, 2, 2, 1, (2, 3)))
    return [
        (OPS.dwconv2d_fwd, (x.requires_grad_(), w.requires_grad_(), b.requires_grad_(), 2, 1, "auto", 2, 3)),
        (OPS.dwconv2d_fwd, (x.detach().contiguous(memory_format=torch.channels_last), w.detach(), None, 2, 1,
                            "direct", 2, 3)),
        (OPS.dwconv2d_bwd_input, (dy.requires_grad_(), w.detach(), 2, 1, "direct", 2, 3)),
        (OPS.dwconv2d_bwd_weight, (dy.detach().requires_grad_(), x.detach().requires_grad_(), 3, 2, 2, 1, "auto",
                                   2, 3)),
    ]


@pytest.mark.parametrize("index", range(4))
def test_opcheck_with_dilation(index):
    op, args = _op_samples()[index]
    torch.library.opcheck(op, args)


def test_compile_fullgraph_matches_eager():
    conv = replk_ops.LargeKernelDWConv2d(4, 3, dilation=(3, 2))
    assert_compiled_matches_eager(conv, torch.randn(2, 4, 12, 11, requires_grad=True))


def _convolutions(graph_module):
    return [n for n in graph_module.graph.nodes if n.op == "call_function" and "convolution" in str(n.target)]


def test_export_lowers_to_aten_convolution_with_the_dilation():
    from replk_ops.export import decompositions, standard_program

    model = nn.Sequential(replk_ops.LargeKernelDWConv2d(4, 3, dilation=(3, 2)), nn.ReLU()).eval()
    x = torch.randn(1, 4, 14, 13)
    program = torch.export.export(model, (x,))
    standard = standard_program(program)
    (node,) = _convolutions(standard.graph_module)
    assert list(node.args[5]) == [3, 2]
    torch.testing.assert_close(standard.module()(x), model(x))
    ops = torch.ops.replk_ops
    dy = torch.randn(1, 4, 14, 13, dtype=torch.float64)
    xd, wd = x.double(), torch.randn(4, 1, 3, 3, dtype=torch.float64)
    table = decompositions()
    torch.testing.assert_close(table[ops.dwconv2d_bwd_input.default](dy, wd, 3, 2, "auto", 3, 2),
                               ops.dwconv2d_bwd_input(dy, wd, 3, 2, "direct", 3, 2))
    for got, want in zip(table[ops.dwconv2d_bwd_weight.default](dy, xd, 3, 3, 3, 2, "auto", 3, 2),
                         ops.dwconv2d_bwd_weight(dy, xd, 3, 3, 3, 2, "direct", 3, 2)):
        torch.testing.assert_close(got, want)


def test_jit_trace_and_fx_record_conv2d_with_the_dilation():
    model = nn.Sequential(replk_ops.LargeKernelDWConv2d(4, 3, dilation=4)).eval()
    x = torch.randn(1, 4, 12, 12)
    traced = torch.jit.trace(model, x)
    graph = str(traced.inlined_graph)
    assert "aten::_convolution" in graph and "replk_ops::" not in graph
    x2 = torch.randn(1, 4, 12, 12)  # the recorded conv, not a constant: right only with the dilation
    torch.testing.assert_close(traced(x2), model(x2))
    gm = torch.fx.symbolic_trace(model)
    torch.testing.assert_close(gm(x2), model(x2))


@needs_fx_functional
def test_fx_records_the_functional_op_with_the_dilation():
    x = torch.randn(1, 4, 12, 12)
    functional = torch.fx.symbolic_trace(lambda a, w: replk_ops.dwconv2d(a, w, None, "same", 4))
    (node,) = [n for n in functional.graph.nodes if n.target is F.conv2d or n.target is torch.conv2d]
    assert node.args[5] == (4, 4)
    w = torch.randn(4, 1, 3, 3)
    torch.testing.assert_close(functional(x, w), F.conv2d(x, w, padding=4, dilation=4, groups=4))


# --- modules, convert, revert ------------------------------------------------------------------------------
@pytest.mark.parametrize("padding", ["same", "valid", 0, 3, (5, 1)])
def test_module_matches_nn_conv2d_and_converts_back(padding):
    conv = nn.Conv2d(6, 6, 3, padding=padding, dilation=(4, 2), groups=6)
    fast = replk_ops.LargeKernelDWConv2d.from_conv2d(conv)
    assert fast.dilation == (4, 2) and fast.weight is conv.weight
    x = torch.randn(2, 6, 13, 12)
    torch.testing.assert_close(fast(x), conv(x), rtol=1e-4, atol=1e-5)
    back = fast.to_conv2d()
    assert type(back) is nn.Conv2d and back.dilation == (4, 2)
    torch.testing.assert_close(back(x), conv(x))


def test_convert_counts_the_span_and_revert_restores_dilated_convs():
    model = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=5, dilation=5, groups=8),   # span 11: converted
        nn.Conv2d(8, 8, 3, padding=3, dilation=3, groups=8),   # span 7: converted
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8),   # span 5: left alone
        nn.Conv2d(8, 8, 4, padding="same", dilation=3, groups=8),  # even span, "same": ineligible
    )
    x = torch.randn(1, 8, 16, 16)
    before = model(x)
    assert replk_ops.convert(model) == 2
    assert [type(m) for m in model] == [replk_ops.LargeKernelDWConv2d] * 2 + [nn.Conv2d] * 2
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)
    assert replk_ops.revert(model) == 2
    assert all(type(m) is nn.Conv2d for m in model) and model[0].dilation == (5, 5)


# --- the UniRepLKNet-style block ----------------------------------------------------------------------------
def _grads(model, x):
    x = x.detach().clone().requires_grad_()
    out = model(x)
    # torch.randn, not randn_like: torch 2.4's randn_like takes no generator
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1)))
    return out, x.grad, {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("kernel_size", [13, 17])
def test_dilated_block_converts_and_trains_like_the_original(kernel_size):
    torch.manual_seed(0)
    block = DilatedReparamBlock(8, kernel_size)
    randomize_bn(block)
    reference = DilatedReparamBlock(8, kernel_size)
    reference.load_state_dict(block.state_dict())
    replk_ops.convert(block, min_kernel_size=5)
    depthwise = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert len(depthwise) == 6 and all(isinstance(m, replk_ops.LargeKernelDWConv2d) for m in depthwise)
    x = torch.randn(2, 8, 15, 14)
    out, dx, grads = _grads(block, x)
    ref_out, ref_dx, ref_grads = _grads(reference, x)
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dx, ref_dx, rtol=1e-4, atol=1e-4)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-4, msg=name)


def test_default_convert_takes_every_dilated_branch_and_merging_keeps_the_output():
    block = DilatedReparamBlock(8, 13)
    randomize_bn(block)
    replk_ops.convert(block)
    converted = {name for name, m in block.named_modules() if isinstance(m, replk_ops.LargeKernelDWConv2d)}
    assert converted == {"lk_origin", "dil_conv_k7_2", "dil_conv_k3_3", "dil_conv_k3_4", "dil_conv_k3_5"}
    block.eval()
    x = torch.randn(2, 8, 16, 13)
    with torch.no_grad():
        unmerged = block(x)
        block.merge_dilated_branches()
        merged = block(x)
    assert block.merged and isinstance(block.lk_origin, replk_ops.LargeKernelDWConv2d)
    assert [name for name, _ in block.named_children()] == ["lk_origin"]
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="kernel_size"):
        DilatedReparamBlock(8, 12)


# --- bad input -------------------------------------------------------------------------------------------
X, W = torch.randn(1, 4, 12, 12), torch.randn(4, 1, 3, 3)
BAD = [
    (0, ValueError, "dilation: expected dilations >= 1, got (0, 0)"),
    (-2, ValueError, "dilation"),
    ((1, 0), ValueError, "(1, 0)"),
    (1.5, TypeError, "dilation: expected an int or a pair of ints, got 1.5"),
    (True, TypeError, "dilation"),
    ((True, 1), TypeError, "dilation"),
    ((1, 2, 3), TypeError, "dilation"),
    ((2,), TypeError, "dilation"),
    ("2", TypeError, "dilation"),
    (None, TypeError, "dilation"),
]


@pytest.mark.parametrize("dilation,exception,text", BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_dilation_raises_before_any_kernel(dilation, exception, text):
    replk_ops.dwconv2d(X, W, None, 1, 1)  # a ready call for dilation 1 must not let a bool through
    for call in (lambda: replk_ops.dwconv2d(X, W, None, 1, dilation),
                 lambda: replk_ops.explain(X, W, 1, dilation=dilation),
                 lambda: replk_ops.LargeKernelDWConv2d(4, 3, padding=1, dilation=dilation)):
        with pytest.raises(exception) as info:
            call()
        assert text in str(info.value)


def test_bad_dilated_padding_and_sizes_raise():
    with pytest.raises(ValueError, match=r"needs odd kernel sizes .* spans \(4, 4\)"):
        replk_ops.dwconv2d(X, torch.randn(4, 1, 2, 2), None, "same", 3)
    with pytest.raises(ValueError, match="span"):
        replk_ops.dwconv2d(X, W, None, 0, 6)  # span 13 over a 12x12 map without padding
    with pytest.raises(ValueError, match="dilation"):
        OPS.dwconv2d_fwd(X, W, None, 1, 1, "auto", 0, 1)


def test_bench_shapes_take_a_dilation():
    from replk_ops.bench.runner import flops
    from replk_ops.bench.shapes import Shape, parse_shape

    shape = parse_shape("1,2,9,9,3,3,4")
    assert shape == Shape(1, 2, 9, 9, 3, 3, "custom", dilation=4) and shape.padding == (4, 4)
    # along one side, 3 taps 4 apart with padding 4: 2 of them inside the map for 8 outputs, 3 for the middle one
    assert flops(shape, "fwd", valid=True) == 2 * 2 * 19 ** 2
    assert flops(shape, "fwd", valid=False) == 2 * 2 * 81 * 9
    with pytest.raises(ValueError, match="seven"):
        parse_shape("1,2,9,9,3,3,4,5")


def _dilated_plan(padding, dtype=torch.float32):
    x, w = torch.randn(1, 4, 30, 30, dtype=dtype), torch.randn(4, 1, 7, 7, dtype=dtype)
    return dict(replk_ops.explain(x, w, padding, dilation=3).choices)


@needs_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=lambda d: str(d)[6:])
def test_dilated_cpu_plan_is_the_compiled_kernels_by_rule(dtype):
    """Every pass runs on the compiled kernels by rule, except a full-precision forward that
    PyTorch's own call runs on oneDNN's fast path: that one is timed (explain says what it will time
    and, until then, names the compiled kernels)."""
    from replk_ops.backends.direct import ONEDNN_DILATED_MAX_PAD

    for padding in (0, 9):
        choices = _dilated_plan(padding, dtype)
        assert {c.implementation.name for c in choices.values()} == {"cpp"}
        timed = dtype == torch.float32 and padding <= ONEDNN_DILATED_MAX_PAD
        for pass_name, choice in choices.items():
            if pass_name == "fwd" and timed:
                assert "times torch, cpp" in choice.how
            else:
                assert choice.how.startswith("by rule")


def test_dilated_cpu_plan_without_the_compiled_kernels_is_a_rule(monkeypatch):
    from replk_ops.backends.cpp import loader as cpp
    from replk_ops.backends.direct import ONEDNN_DILATED_MAX_PAD

    monkeypatch.setattr(cpp, "UNAVAILABLE", "not built (test)")
    replk_ops.planner.reset()
    try:
        small, large = _dilated_plan(min(ONEDNN_DILATED_MAX_PAD, 6)), _dilated_plan(9)
        assert small["fwd"].implementation.name == "torch" and large["fwd"].implementation.name == "direct"
        for choices in (small, large):
            assert all(c.how.startswith("by rule") for c in choices.values())
            assert choices["bwd_input"].implementation.name == choices["bwd_weight"].implementation.name == "direct"
        assert not _dilated_plan(9, torch.bfloat16)["fwd"].how.startswith("by rule")  # half precision: measured
    finally:
        replk_ops.planner.reset()


def test_undilated_runners_are_wrapped_and_refuse_a_dilated_call_unwrapped():
    """Triton's and CUDA's kernels are undilated: their entries always run them through
    space-to-batch, and a dilated call that reaches them unwrapped is a ValueError, before any work."""
    from replk_ops.backends.cuda import CudaRunner
    from replk_ops.backends.triton import TritonRunner

    for impl in catalog.implementations():
        assert impl.space_to_batch == (impl.backend in ("triton", "cuda")), impl.name
    x, weight, dy = torch.randn(1, 2, 8, 8), torch.randn(2, 1, 3, 3), torch.randn(1, 2, 8, 8)
    for runner in (TritonRunner(), CudaRunner()):
        with pytest.raises(ValueError, match=r"dilation: .* expected \(1, 1\), got \(2, 1\)"):
            runner.fwd(x, weight, None, 2, 1, (2, 1))
        with pytest.raises(ValueError, match="dilation"):
            runner.bwd_input(dy, weight, 2, 1, (2, 1))
        with pytest.raises(ValueError, match="dilation"):
            runner.bwd_weight(dy, x, 3, 3, 2, 1, (2, 1))
