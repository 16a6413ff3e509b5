"""The 3-D API keeps every guarantee of the 2-D one: bad input raises before any work, the
registered ops pass opcheck and compile, the module is a drop-in nn.Conv3d, convert/revert swap
depthwise nn.Conv3d, every export path records a standard conv, explain names what runs."""
import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import replk_ops
from replk_ops.export import decompositions, onnx_translations, standard_program
from replk_ops.ops3d import dwconv3d_bwd_input, dwconv3d_bwd_weight, dwconv3d_fwd
from conv_testing import needs_dynamo_onnx

X = torch.randn(1, 4, 6, 6, 6)
W = torch.randn(4, 1, 3, 3, 3)

BAD = [
    ("x rank 4", lambda: replk_ops.dwconv3d(torch.randn(4, 6, 6, 6), W), ValueError, "x: expected a 5-D"),
    ("weight rank 4", lambda: replk_ops.dwconv3d(X, torch.randn(4, 1, 3, 3)), ValueError, "weight: expected a 5-D"),
    ("channel mismatch", lambda: replk_ops.dwconv3d(X, torch.randn(3, 1, 3, 3, 3)), ValueError,
     r"weight: expected shape \(4, 1, kd, kh, kw\)"),
    ("even kernel same", lambda: replk_ops.dwconv3d(X, torch.randn(4, 1, 3, 4, 3)), ValueError,
     'padding: "same" needs odd kernel sizes'),
    ("dtype mismatch", lambda: replk_ops.dwconv3d(X, W.double()), TypeError, "weight: expected dtype torch.float32"),
    ("int dtype", lambda: replk_ops.dwconv3d(X.long(), W.long()), TypeError, "x: expected a floating-point dtype"),
    ("bias length", lambda: replk_ops.dwconv3d(X, W, torch.randn(5)), ValueError, r"bias: expected shape \(4,\)"),
    ("negative padding", lambda: replk_ops.dwconv3d(X, W, padding=(1, -1, 1)), ValueError,
     "padding: expected non-negative"),
    ("padding pair", lambda: replk_ops.dwconv3d(X, W, padding=(1, 1)), TypeError,
     r"padding: expected \"same\", an int or \(pd, ph, pw\)"),
    ("bad padding word", lambda: replk_ops.dwconv3d(X, W, padding="full"), ValueError, "padding: expected"),
    ("zero dilation", lambda: replk_ops.dwconv3d(X, W, dilation=0), ValueError, "dilation: expected dilations >= 1"),
    ("bool dilation", lambda: replk_ops.dwconv3d(X, W, dilation=True), TypeError, "dilation: expected an int"),
    ("kernel too big valid", lambda: replk_ops.dwconv3d(X, torch.randn(4, 1, 7, 3, 3), padding="valid"),
     ValueError, "is smaller than the kernel's span"),
    ("backend name", lambda: replk_ops.dwconv3d(X, W, backend="fast"), ValueError, "backend: expected one of"),
    ("2-D only backend", lambda: replk_ops.dwconv3d(X, W, backend="triton"), RuntimeError,
     "runs 2-D convolutions only, got a 3-D one"),
    ("int32 sizes", lambda: replk_ops.dwconv3d(torch.empty(1, 1, 1, 1, 1).expand(2, 1, 1024, 1024, 1024),
                                               torch.randn(1, 1, 1, 1, 1)), ValueError, "32-bit integers"),
    ("module channels", lambda: replk_ops.LargeKernelDWConv3d(0, 3), ValueError, "channels: expected a positive"),
    ("module kernel", lambda: replk_ops.LargeKernelDWConv3d(4, (3, 3)), TypeError, "kernel_size: expected"),
]


@pytest.mark.parametrize("name,call,error,match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_before_any_work(name, call, error, match):
    with pytest.raises(error, match=match):
        call()


def _op_args():
    x = torch.randn(2, 3, 5, 6, 4, requires_grad=True)
    w = torch.randn(3, 1, 3, 5, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    dy = torch.randn(2, 3, 5, 6, 4)
    return [
        (dwconv3d_fwd, (x, w, b, [1, 2, 1], "auto", [1, 1, 1])),
        (dwconv3d_fwd, (x.detach().contiguous(memory_format=torch.channels_last_3d), w, None, [0, 1, 2], "direct",
                        [1, 1, 1])),
        (dwconv3d_fwd, (x, w, b, [1, 2, 1], "fft", [1, 1, 1])),
        (dwconv3d_bwd_input, (dy, w, [1, 2, 1], "direct", [1, 1, 1])),
        (dwconv3d_bwd_weight, (dy, x, [3, 5, 3], [1, 2, 1], "fft", [1, 1, 1])),
        (dwconv3d_bwd_weight, (torch.randn(2, 3, 5, 6, 4), x, [3, 3, 3], [2, 2, 1], "direct", [2, 2, 1])),
    ]


@pytest.mark.parametrize("index", range(6))
def test_opcheck(index):
    op, args = _op_args()[index]
    torch.library.opcheck(op, args)


def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    x = torch.randn(1, 2, 5, 6, 7, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, 3, requires_grad=True)
    f = torch.compile(lambda x, w: replk_ops.dwconv3d(x, w).square().sum(), fullgraph=True, backend="aot_eager")
    out = f(x, w)
    out.backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    ref = F.conv3d(x, w, None, 1, 1, 1, 2).square().sum()
    ref.backward()
    assert torch.allclose(out, ref, rtol=1e-5) and torch.allclose(gx, x.grad, atol=1e-4)
    assert torch.allclose(gw, w.grad, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_in_autocast_dtype_like_conv3d(dtype):
    conv = replk_ops.LargeKernelDWConv3d(2, 3)
    with torch.autocast("cpu", dtype=dtype):
        y = conv(torch.randn(1, 2, 4, 4, 4))
        ref = nn.Conv3d.forward(conv, torch.randn(1, 2, 4, 4, 4))
    assert y.dtype == ref.dtype == dtype


def test_module_is_a_state_dict_compatible_drop_in():
    torch.manual_seed(0)
    plain = nn.Conv3d(4, 4, (3, 5, 3), padding=(1, 2, 1), groups=4)
    fast = replk_ops.LargeKernelDWConv3d(4, (3, 5, 3))
    fast.load_state_dict(plain.state_dict())
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 4, 5, 6, 4)
    assert isinstance(fast, nn.Conv3d)
    assert torch.allclose(fast(x), plain(x), atol=1e-5)


def test_convert_swaps_depthwise_conv3d_and_revert_swaps_back():
    model = nn.Sequential(nn.Conv3d(2, 4, 1), nn.Conv3d(4, 4, 7, padding=3, groups=4),
                          nn.Conv3d(4, 4, 3, padding=1, groups=4), nn.Conv3d(4, 4, 7, padding=3, groups=2),
                          nn.Conv2d(4, 4, 7, padding=3, groups=4))
    x = torch.randn(1, 2, 6, 6, 6)
    ref = model[:4](x)
    assert replk_ops.convert(model) == 2  # the 7x7x7 depthwise conv3d and the 7x7 conv2d
    assert isinstance(model[1], replk_ops.LargeKernelDWConv3d) and type(model[2]) is nn.Conv3d
    assert model[1].weight is not None and torch.allclose(model[:4](x), ref, atol=1e-5)
    assert replk_ops.convert(model, min_kernel_size=3) == 1  # MedNeXt's 3x3x3 too
    assert replk_ops.revert(model) == 3
    assert type(model[1]) is nn.Conv3d and type(model[2]) is nn.Conv3d
    assert torch.allclose(model[:4](x), ref, atol=1e-5)


def test_explain_names_the_route_and_why_2d_only_backends_are_out():
    text = str(replk_ops.explain(torch.randn(1, 4, 8, 8, 8), torch.randn(4, 1, 7, 7, 7)))
    assert "4 channels of 8x8x8 (cpu, float32, NCDHW), a 7x7x7 kernel, padding (3, 3, 3)" in text
    assert "cpp                  available, but \"auto\" leaves 3-D kernels over 125 taps" in text
    assert "triton               runs 2-D convolutions only, got a 3-D one" in text
    assert "weight gradient (bwd_weight): direct (by rule:" in text


def test_explain_gives_fft_the_backward_of_a_large_kernel():
    plan = replk_ops.explain(torch.randn(1, 2, 16, 16, 16), torch.randn(2, 1, 13, 13, 13))
    assert plan.choices["bwd_input"].implementation.name == "fft"
    assert plan.choices["bwd_weight"].implementation.name == "fft"


# --- export: every path records the standard conv ------------------------------------------------
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.pw = nn.Conv3d(2, 4, 1)
        self.dw = replk_ops.LargeKernelDWConv3d(4, (5, 3, 5))

    def forward(self, x):
        return self.dw(self.pw(x)).relu()


def _net_and_input():
    torch.manual_seed(0)
    return _Net().eval(), torch.randn(1, 2, 6, 7, 6)


def _depthwise_convs(gm):
    return [n for n in gm.graph.nodes if n.op == "call_function"
            and n.target in (torch.ops.aten.convolution.default, torch.conv3d, torch.ops.aten.conv3d.default)]


def test_jit_trace_and_script_record_conv3d():
    model, x = _net_and_input()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for scripted in (torch.jit.trace(model, x), torch.jit.script(model)):
            buffer = io.BytesIO()
            torch.jit.save(scripted, buffer)
            buffer.seek(0)
            loaded = torch.jit.load(buffer)
            assert "replk_ops::" not in str(loaded.inlined_graph)
            assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_fx_records_conv3d_or_keeps_the_fast_leaf():
    model, x = _net_and_input()
    traced = torch.fx.symbolic_trace(model)
    assert any(n.target is torch.conv3d for n in traced.graph.nodes)
    assert torch.allclose(traced(x), model(x), atol=1e-5)
    kept = replk_ops.export.symbolic_trace(model)
    assert any(n.op == "call_module" and n.target == "dw" for n in kept.graph.nodes)


def test_torch_export_keeps_the_op_and_lowers_to_aten_convolution():
    model, x = _net_and_input()
    program = torch.export.export(model, (x,))
    assert any("dwconv3d_fwd" in str(n.target) for n in program.graph_module.graph.nodes)
    standard = standard_program(program)
    assert not any("replk_ops" in str(n.target) for n in standard.graph_module.graph.nodes)
    assert len(_depthwise_convs(standard.graph_module)) == 2
    assert torch.allclose(standard.module()(x), model(x), atol=1e-5)


def test_training_graph_lowers_every_pass_to_aten():
    x = torch.randn(1, 2, 5, 5, 5, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, 3, requires_grad=True)
    dy = torch.randn(1, 2, 5, 5, 5)
    table = decompositions()
    for op, args in ((dwconv3d_bwd_input, (dy, w, [1, 1, 1], "auto", [1, 1, 1])),
                     (dwconv3d_bwd_weight, (dy, x, [3, 3, 3], [1, 1, 1], "auto", [1, 1, 1]))):
        lowered = table[op._opoverload](*args)
        expected = op(*args)
        for a, b in zip(lowered if isinstance(lowered, tuple) else (lowered,),
                        expected if isinstance(expected, tuple) else (expected,)):
            assert torch.allclose(a, b, atol=1e-4)


def _onnx_run(path, x):
    onnx = pytest.importorskip("onnx", reason="onnx is a test extra")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a test extra")
    graph = onnx.load(path).graph
    assert all(n.domain in ("", "ai.onnx") for n in graph.node)
    assert any(n.op_type == "Conv" and any(a.name == "group" and a.i == 4 for a in n.attribute) for n in graph.node)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return torch.as_tensor(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def test_onnx_legacy_exporter(tmp_path):
    pytest.importorskip("onnx", reason="onnx is a test extra")
    model, x = _net_and_input()
    path = str(tmp_path / "m.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), path, dynamo=False)
    assert torch.allclose(_onnx_run(path, x), model(x), atol=1e-4)


@needs_dynamo_onnx
def test_onnx_translation_of_a_program_holding_the_op(tmp_path):
    pytest.importorskip("onnxscript", reason="onnxscript is a test extra")
    pytest.importorskip("onnx", reason="onnx is a test extra")
    model, x = _net_and_input()
    program = torch.export.export(model, (x,))
    path = str(tmp_path / "m.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(program, custom_translation_table=onnx_translations(), verbose=False).save(path)
    assert torch.allclose(_onnx_run(path, x), model(x), atol=1e-4)
