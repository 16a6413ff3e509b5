"""Deploying converted models: every export path emits a standard convolution, loads in its own
runtime and matches eager; ``revert`` gives plain nn.Conv2d back; compat keeps the fast path
through the official RepLKNet reparam.

Models: timm's ConvNeXt-atto (7x7 kernels) and InceptionNeXt-atto (1x9 and 9x1 bands) after
``replk_ops.convert``, and RepLKNet-31B after ``structural_reparam()``: its kernels and depth at
an eighth of its width in the default run, the full model under ``-m slow``.
"""
import inspect
import io
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import replk_ops
from replk_ops import models
from conv_testing import HANG_GUARD_S, needs_dynamo_onnx, needs_fx_functional, randomize_bn
from replk_ops.export import decompositions, onnx_translations, standard_program

RTOL = 1e-4
INPUT = (1, 3, 64, 64)  # RepLKNet downsamples 32x; ConvNeXt and InceptionNeXt 32x too
MODEL_NAMES = ["convnext_atto", "inception_next_atto", "replknet31b_narrow",
               pytest.param("replknet31b", marks=pytest.mark.slow)]


@pytest.fixture(autouse=True)
def _quiet_exporters():
    # jit.trace/script/save/load are deprecated in recent torch and the exporters are chatty
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _timm_model(name: str) -> nn.Module:
    timm = pytest.importorskip("timm", reason="timm is a test extra (pip install replk_ops[test])")
    model = timm.create_model(name, pretrained=False).eval()
    assert replk_ops.convert(model) > 0
    return model


def _replknet31b(narrow: bool) -> nn.Module:
    torch.manual_seed(0)
    if narrow:  # RepLKNet-31B's kernels (31, 29, 27, 13), small kernel 5 and depth, 1/8 of its width
        model = models.RepLKNet([31, 29, 27, 13], [2, 2, 18, 2], [16, 32, 64, 128], small_kernel=5)
    else:
        model = models.replknet31b()
    randomize_bn(model)
    model.eval()
    assert model.structural_reparam() == 24
    return model


_MODELS = {}


def _model(name: str) -> nn.Module:
    """Built once per session; every test leaves it as it found it."""
    if name not in _MODELS:
        if name.startswith("replknet31b"):
            _MODELS[name] = _replknet31b(narrow=name.endswith("narrow"))
        else:
            _MODELS[name] = _timm_model(name)
    return _MODELS[name]


_REFERENCE = {}


def _eager(name: str):
    """(input, eager output) of a model; the output comes from replk_ops' own kernels."""
    if name not in _REFERENCE:
        x = torch.randn(INPUT, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            _REFERENCE[name] = (x, _model(name)(x))
    return _REFERENCE[name]


def _assert_matches(out, ref, what: str) -> None:
    out = torch.as_tensor(out)
    rel = ((out - ref).abs().max() / ref.abs().max()).item()
    print(f"{what}: max relative error {rel:.1e}")  # shown with -rA
    assert rel <= RTOL, f"{what}: max relative error {rel:.2e} > {RTOL}"


def _count_fast_ops(graph_module: torch.fx.GraphModule) -> int:
    return sum(1 for n in graph_module.graph.nodes if "replk_ops" in str(n.target))


_GROUPS_ARG = {torch.ops.aten.convolution.default: 8, torch.ops.aten.conv2d.default: 6, torch.conv2d: 6}


def _depthwise_nodes(graph_module: torch.fx.GraphModule):
    """The standard convolution calls with more than one group."""
    def groups(node):
        index = _GROUPS_ARG[node.target]
        return node.args[index] if len(node.args) > index else node.kwargs.get("groups", 1)

    return [n for n in graph_module.graph.nodes
            if n.op == "call_function" and n.target in _GROUPS_ARG and groups(n) != 1]


def _legacy_onnx_export(model, x, path) -> None:
    """The TorchScript-based exporter (the default before torch 2.9, ``dynamo=False`` since)."""
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        torch.onnx.export(model, (x,), path, dynamo=False)
    else:
        torch.onnx.export(model, (x,), path)


# --- ONNX --------------------------------------------------------------------------------------
@pytest.fixture
def onnx_and_runtime():
    """Skips (before exporting) where the ONNX packages are missing, e.g. no wheel for this Python."""
    return (pytest.importorskip("onnx", reason="onnx is a test extra (pip install replk_ops[test])"),
            pytest.importorskip("onnxruntime", reason="onnxruntime is a test extra (no wheel for this Python?)"))


def _onnxruntime_output(path: str, x: torch.Tensor):
    import onnx
    import onnxruntime as ort

    graph = onnx.load(path).graph
    ops = {n.op_type for n in graph.node}
    assert not any(n.domain not in ("", "ai.onnx") for n in graph.node), "a custom-domain op is left"
    groups = [a.i for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert "Conv" in ops and any(g > 1 for g in groups), "no depthwise ONNX Conv (group = C) in the graph"
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@needs_dynamo_onnx
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_onnx_dynamo_exporter_runs_in_onnxruntime(name, tmp_path, onnx_and_runtime):
    pytest.importorskip("onnxscript", reason="onnxscript is a test extra (the dynamo exporter needs it)")
    x, ref = _eager(name)
    path = str(tmp_path / "model.onnx")
    torch.onnx.export(_model(name), (x,), dynamo=True, verbose=False).save(path)
    _assert_matches(_onnxruntime_output(path, x), ref, f"{name} via torch.onnx.export(dynamo=True)")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_onnx_legacy_exporter_runs_in_onnxruntime(name, tmp_path, onnx_and_runtime):
    x, ref = _eager(name)
    path = str(tmp_path / "model.onnx")
    _legacy_onnx_export(_model(name), x, path)
    _assert_matches(_onnxruntime_output(path, x), ref, f"{name} via torch.onnx.export(dynamo=False)")


@needs_dynamo_onnx
def test_onnx_translation_exports_a_program_that_holds_the_fast_op(tmp_path, onnx_and_runtime):
    pytest.importorskip("onnxscript", reason="onnxscript is a test extra (the dynamo exporter needs it)")
    model = nn.Sequential(replk_ops.LargeKernelDWConv2d(6, (13, 7)), nn.ReLU(),
                          replk_ops.LargeKernelDWConv2d(6, 9, bias=False)).eval()
    x = torch.randn(2, 6, 20, 24)
    program = torch.export.export(model, (x,))
    assert _count_fast_ops(program.graph_module) == 2
    path = str(tmp_path / "model.onnx")
    torch.onnx.export(program, custom_translation_table=onnx_translations(), verbose=False).save(path)
    _assert_matches(_onnxruntime_output(path, x), model(x).detach(), "ExportedProgram with onnx_translations()")


def test_legacy_onnx_symbolic_translates_a_direct_op_call(tmp_path, onnx_and_runtime):
    class DirectCall(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(5, 1, 11, 9))

        def forward(self, x):
            return torch.ops.replk_ops.dwconv2d_fwd(x, self.weight, None, 5, 4, "auto")

    model, x = DirectCall().eval(), torch.randn(1, 5, 16, 16)
    path = str(tmp_path / "model.onnx")
    _legacy_onnx_export(model, x, path)
    _assert_matches(_onnxruntime_output(path, x), model(x).detach(), "the op's legacy ONNX symbolic")


# --- TorchScript -------------------------------------------------------------------------------
def _saved_and_loaded(script_module):
    buffer = io.BytesIO()
    torch.jit.save(script_module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_jit_trace_with_grad_enabled_saves_loads_and_runs_aten_convolution(name):
    x, ref = _eager(name)
    assert torch.is_grad_enabled()
    traced = torch.jit.trace(_model(name), (x,))  # check_trace on: the graphs must agree
    graph = str(traced.inlined_graph)
    assert "aten::_convolution" in graph and "PythonOp" not in graph and "replk_ops::" not in graph
    with torch.no_grad():
        _assert_matches(_saved_and_loaded(traced)(x), ref, f"{name} via torch.jit.trace")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_jit_script_saves_loads_and_leaves_the_model_fast(name):
    x, ref = _eager(name)
    model = _model(name)
    fast_before = sum(isinstance(m, replk_ops.LargeKernelDWConv2d) for m in model.modules())
    scripted = torch.jit.script(model)
    assert sum(isinstance(m, replk_ops.LargeKernelDWConv2d) for m in model.modules()) == fast_before
    with torch.no_grad():
        _assert_matches(_saved_and_loaded(scripted)(x), ref, f"{name} via torch.jit.script")


def test_jit_script_of_the_unconverted_replknet_with_feature_outputs():
    torch.manual_seed(0)
    model = models.RepLKNet([13, 11], [1, 1], [8, 16], small_kernel=5, num_classes=None, out_indices=[0, 1]).eval()
    x = torch.randn(2, 3, 32, 32)
    outputs = _saved_and_loaded(torch.jit.script(model))(x)
    for out, ref in zip(outputs, model(x)):
        _assert_matches(out, ref.detach(), "scripted RepLKNet features")


# --- FX ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fx_symbolic_trace_records_standard_convs(name):
    x, ref = _eager(name)
    model = _model(name)
    fast = sum(isinstance(m, replk_ops.LargeKernelDWConv2d) for m in model.modules())
    traced = torch.fx.symbolic_trace(model)
    assert _count_fast_ops(traced) == 0 and len(_depthwise_nodes(traced)) >= fast
    with torch.no_grad():
        _assert_matches(traced(x), ref, f"{name} via torch.fx.symbolic_trace")


def test_fx_tracer_can_keep_the_fast_convs_as_leaves():
    x, ref = _eager("replknet31b_narrow")
    model = _model("replknet31b_narrow")
    traced = replk_ops.export.symbolic_trace(model)
    leaves = [n for n in traced.graph.nodes
              if n.op == "call_module" and isinstance(traced.get_submodule(n.target), replk_ops.LargeKernelDWConv2d)]
    assert len(leaves) == sum(isinstance(m, replk_ops.LargeKernelDWConv2d) for m in model.modules()) > 24
    with torch.no_grad():
        _assert_matches(traced(x), ref, "FX with LargeKernelDWConv2d leaves")


@needs_fx_functional
def test_fx_traces_the_functional_op():
    def f(x, w, b):
        return replk_ops.dwconv2d(x, w, b, padding="same").relu()

    traced = torch.fx.symbolic_trace(f)
    x, w, b = torch.randn(2, 4, 12, 12), torch.randn(4, 1, 7, 5), torch.randn(4)
    assert _count_fast_ops(traced) == 0
    _assert_matches(traced(x, w, b), F.conv2d(x, w, b, padding=(3, 2), groups=4).relu(), "FX of dwconv2d")


def test_torchvision_feature_extractor_traces_a_converted_model():
    feature_extraction = pytest.importorskip("torchvision.models.feature_extraction",
                                             reason="torchvision is not installed")
    model = _model("replknet31b_narrow")
    x, _ = _eager("replknet31b_narrow")
    extractor = feature_extraction.create_feature_extractor(model, {"stages.1": "features"})
    with torch.no_grad():
        expected = model.stages[1](model.transitions[0](model.stages[0](
            _run_stem(model, x))))
        _assert_matches(extractor(x)["features"], expected, "create_feature_extractor")


def _run_stem(model, x):
    for layer in model.stem:
        x = layer(x)
    return x


_PROGRAMS = {}


def _exported(name: str):
    """(torch.export program, its standard_program) of a model."""
    if name not in _PROGRAMS:
        program = torch.export.export(_model(name), (_eager(name)[0],))
        _PROGRAMS[name] = (program, standard_program(program))
    return _PROGRAMS[name]


# --- torch.export ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_torch_export_keeps_the_fast_op_and_standard_program_lowers_it(name, tmp_path):
    x, ref = _eager(name)
    program, standard = _exported(name)
    assert _count_fast_ops(program.graph_module) > 0  # for AOTInductor and torch.compile
    assert _count_fast_ops(standard.graph_module) == 0
    assert len(_depthwise_nodes(standard.graph_module)) >= _count_fast_ops(program.graph_module)
    path = tmp_path / "model.pt2"
    torch.export.save(standard, path)
    with torch.no_grad():
        _assert_matches(torch.export.load(path).module()(x), ref, f"{name} via standard_program + torch.export.load")


def test_decompositions_match_all_three_ops():
    x, w, b = torch.randn(2, 3, 10, 12, dtype=torch.float64), torch.randn(3, 1, 5, 7, dtype=torch.float64), None
    grad_out = torch.randn(2, 3, 8, 14, dtype=torch.float64)  # padding (1, 4)
    table = decompositions()
    ops = torch.ops.replk_ops
    torch.testing.assert_close(table[ops.dwconv2d_fwd.default](x, w, b, 1, 4, "auto"),
                               ops.dwconv2d_fwd(x, w, b, 1, 4, "direct"))
    torch.testing.assert_close(table[ops.dwconv2d_bwd_input.default](grad_out, w, 1, 4, "auto"),
                               ops.dwconv2d_bwd_input(grad_out, w, 1, 4, "direct"))
    for got, want in zip(table[ops.dwconv2d_bwd_weight.default](grad_out, x, 5, 7, 1, 4, "auto"),
                         ops.dwconv2d_bwd_weight(grad_out, x, 5, 7, 1, 4, "direct")):
        torch.testing.assert_close(got, want)


@pytest.mark.skipif(not hasattr(torch.export, "default_decompositions"),
                    reason=f"torch {torch.__version__} has no torch.export.default_decompositions()")
def test_default_decompositions_plus_ours_lower_to_core_aten():
    model = nn.Sequential(replk_ops.LargeKernelDWConv2d(4, 9), nn.GELU()).eval()
    x = torch.randn(1, 4, 16, 16)
    table = torch.export.default_decompositions()
    table.update(decompositions())
    lowered = torch.export.export(model, (x,)).run_decompositions(table)
    assert _count_fast_ops(lowered.graph_module) == 0
    _assert_matches(lowered.module()(x), model(x).detach(), "default_decompositions() + decompositions()")


def test_torch_export_and_standard_program_keep_a_dynamic_batch():
    model = nn.Sequential(replk_ops.LargeKernelDWConv2d(4, 11), nn.ReLU()).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (torch.randn(2, 4, 16, 16),), dynamic_shapes=({0: batch},))
    assert _count_fast_ops(program.graph_module) == 1
    standard = standard_program(program)
    x = torch.randn(5, 4, 16, 16)
    _assert_matches(program.module()(x), model(x).detach(), "torch.export with a dynamic batch")
    _assert_matches(standard.module()(x), model(x).detach(), "standard_program with a dynamic batch")


def test_standard_program_rejects_other_objects():
    with pytest.raises(TypeError, match="exported_program: expected a torch.export.ExportedProgram, got Sequential"):
        standard_program(nn.Sequential())


# --- loading where replk_ops cannot be imported --------------------------------------------------
_WITHOUT_REPLK_OPS = """
import sys
sys.modules["replk_ops"] = None  # any import of replk_ops now fails
try:
    import replk_ops
except ImportError:
    pass
else:
    raise SystemExit("replk_ops is importable; the test would prove nothing")
import torch

x, ref = torch.load("io.pt")
try:  # the artifact that keeps replk_ops must fail here, or this process proves nothing
    {load_fast}
except Exception as error:
    print("needs replk_ops:", type(error).__name__, error)
else:
    raise SystemExit("the replk_ops artifact loaded and ran without replk_ops")
model = {load_standard}
with torch.no_grad():
    out = model(x)
rel = ((out - ref).abs().max() / ref.abs().max()).item()
assert rel <= 1e-4, rel
print("standard artifact ok", rel)
"""


def _load_without_replk_ops(tmp_path, load_fast: str, load_standard: str) -> str:
    script = tmp_path / "load.py"
    script.write_text(_WITHOUT_REPLK_OPS.format(load_fast=load_fast, load_standard=load_standard))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=HANG_GUARD_S,
                          cwd=str(tmp_path))
    print(done.stdout)  # shown with -rA
    assert done.returncode == 0 and "standard artifact ok" in done.stdout, done.stdout + done.stderr[-3000:]
    # the failure names replk_ops (torch.export.load puts the missing op in a warning)
    assert "replk_ops" in done.stdout.split("needs replk_ops:")[1] + done.stderr
    return done.stdout


def test_standard_pt2_loads_where_replk_ops_cannot_be_imported(tmp_path):
    x, ref = _eager("convnext_atto")
    program, standard = _exported("convnext_atto")
    torch.export.save(standard, tmp_path / "standard.pt2")
    torch.export.save(program, tmp_path / "fast.pt2")
    torch.save((x, ref), tmp_path / "io.pt")
    _load_without_replk_ops(tmp_path, load_fast='torch.export.load("fast.pt2").module()(x)',
                            load_standard='torch.export.load("standard.pt2").module()')


def test_reverted_timm_model_pickles_and_loads_where_replk_ops_cannot_be_imported(tmp_path):
    timm = pytest.importorskip("timm", reason="timm is a test extra (pip install replk_ops[test])")
    model = timm.create_model("inception_next_atto", pretrained=False).eval()
    converted = replk_ops.convert(model)
    x = torch.randn(INPUT)
    with torch.no_grad():
        ref = model(x)
    torch.save(model, tmp_path / "converted.pt")
    assert replk_ops.revert(model) == converted
    assert not any(isinstance(m, replk_ops.LargeKernelDWConv2d) for m in model.modules())
    torch.save(model, tmp_path / "reverted.pt")
    torch.save((x, ref), tmp_path / "io.pt")
    _load_without_replk_ops(tmp_path, load_fast='torch.load("converted.pt", weights_only=False)',
                            load_standard='torch.load("reverted.pt", weights_only=False)')


# --- revert ------------------------------------------------------------------------------------
def test_revert_is_the_inverse_of_convert_and_shares_parameters():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 13, padding=6, groups=8),
                          nn.Sequential(nn.Conv2d(8, 8, (9, 1), padding=(4, 0), groups=8, bias=False))).eval()
    x = torch.randn(2, 3, 24, 24)
    ref = model(x)
    weights = [model[1].weight, model[1].bias, model[2][0].weight]
    assert replk_ops.convert(model) == 2
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert replk_ops.revert(model) == 2
    assert type(model[1]) is nn.Conv2d and type(model[2][0]) is nn.Conv2d
    assert [model[1].weight, model[1].bias, model[2][0].weight] == weights
    assert model[2][0].bias is None and model[1].padding == (6, 6) and not model[1].training
    torch.testing.assert_close(model(x), ref)
    model(x).sum().backward()
    optimizer.step()  # the optimizer still holds the very parameters the reverted model uses
    assert replk_ops.revert(model) == 0


def test_revert_covers_compat_modules_and_rejects_bad_input():
    import replk_ops.compat

    model = nn.Sequential(replk_ops.compat.DepthWiseConv2dImplicitGEMM(4, 7))
    assert replk_ops.revert(model) == 1 and type(model[0]) is nn.Conv2d and model[0].bias is None
    with pytest.raises(TypeError, match="model: expected an nn.Module, got int"):
        replk_ops.revert(3)
    with pytest.raises(TypeError, match="to_conv2d"):
        replk_ops.revert(replk_ops.LargeKernelDWConv2d(4, 7))


def test_converted_models_still_copy_pickle_save_and_share_state_dicts():
    import copy
    import pickle

    plain = nn.Sequential(nn.Conv2d(4, 4, 11, padding=5, groups=4), nn.ReLU()).eval()
    model = copy.deepcopy(plain)
    assert replk_ops.convert(model) == 1
    x = torch.randn(1, 4, 16, 16)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model)), torch.load(buffer, weights_only=False)):
        assert isinstance(copied[0], replk_ops.LargeKernelDWConv2d)
        torch.testing.assert_close(copied(x), plain(x))
    plain.load_state_dict(model.state_dict())
    model.load_state_dict(plain.state_dict())


# --- compat: the official RepLKNet code's reparam -----------------------------------------------
def _official_style_reparam_block(channels: int, kernel: int) -> nn.Module:
    """The official RepLKNet's construction and merge_kernel(), reduced to the lines that matter:
    get_conv2d() uses the extension only for stride == 1 and padding == kernel_size // 2, and the
    merge passes the first conv's attributes, stride (1, 1) and padding as tuples."""
    import os

    def get_conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias):
        use_large_impl = (kernel_size if isinstance(kernel_size, int) else kernel_size[0]) > 5
        if ("LARGE_KERNEL_CONV_IMPL" in os.environ and in_channels == out_channels == groups and use_large_impl
                and stride == 1 and padding == kernel_size // 2 and dilation == 1):
            from depthwise_conv2d_implicit_gemm import DepthWiseConv2dImplicitGEMM
            return DepthWiseConv2dImplicitGEMM(in_channels, kernel_size, bias=bias)
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)

    def conv_bn(size):
        seq = nn.Sequential()
        seq.add_module("conv", get_conv2d(channels, channels, size, 1, size // 2, 1, channels, False))
        seq.add_module("bn", nn.BatchNorm2d(channels))
        return seq

    class ReparamLargeKernelConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.lkb_origin = conv_bn(kernel)
            self.small_conv = conv_bn(5)

        def forward(self, x):
            if hasattr(self, "lkb_reparam"):
                return self.lkb_reparam(x)
            return self.lkb_origin(x) + self.small_conv(x)

        def merge_kernel(self):
            kernel_, bias = models.fuse_conv_bn(self.lkb_origin.conv.weight, self.lkb_origin.bn)
            small, small_bias = models.fuse_conv_bn(self.small_conv.conv.weight, self.small_conv.bn)
            conv = self.lkb_origin.conv
            self.lkb_reparam = get_conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                          conv.padding, conv.dilation, conv.groups, True)
            self.lkb_reparam.weight.data = kernel_ + models.pad_to(small, (kernel, kernel))
            self.lkb_reparam.bias.data = bias + small_bias
            self.__delattr__("lkb_origin")
            self.__delattr__("small_conv")

    return ReparamLargeKernelConv()


def test_compat_keeps_the_fast_path_through_the_official_reparam(monkeypatch):
    import replk_ops.compat

    replk_ops.compat.install()
    monkeypatch.setenv("LARGE_KERNEL_CONV_IMPL", "unused: replk_ops.compat is installed")
    block = _official_style_reparam_block(6, 13)
    randomize_bn(block)
    block.eval()
    assert isinstance(block.lkb_origin.conv, replk_ops.compat.DepthWiseConv2dImplicitGEMM)
    x = torch.randn(2, 6, 20, 20)
    with torch.no_grad():
        ref = block(x)
        block.merge_kernel()
        assert isinstance(block.lkb_reparam, replk_ops.LargeKernelDWConv2d)
        _assert_matches(block(x), ref, "the merged conv")
    # a plain depthwise conv elsewhere (no stand-in of its size beside it) is left alone
    other = nn.Module()
    other.conv = nn.Conv2d(6, 6, 13, padding=6, groups=6)
    assert type(other.conv) is nn.Conv2d
    # and revert is not undone by the hook
    holder = nn.Sequential(replk_ops.compat.DepthWiseConv2dImplicitGEMM(6, 13))
    assert replk_ops.revert(holder) == 1 and type(holder[0]) is nn.Conv2d
