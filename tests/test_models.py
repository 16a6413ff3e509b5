"""The RepLKNet family: published state_dict layout, re-parameterization, training, compat."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import replk_ops
from replk_ops import models
from conv_testing import max_rel_error, randomize_bn
from replk_ops.models import merge_dilated_branches

# the published checkpoints' keys and shapes (see tests/data/README.md)
KEY_FILE = Path(__file__).resolve().parent / "data" / "replknet_state_dict_keys.json"
FACTORIES = {"replknet31b": models.replknet31b, "replknet31l": models.replknet31l, "replknet_xl": models.replknet_xl}


def _tiny(factory_name, **kwargs):
    """A small model with the family's structure: the published kernels, fewer channels/blocks."""
    base = {"replknet31b": dict(large_kernel_sizes=[31, 29, 27, 13], small_kernel=5),
            "replknet31l": dict(large_kernel_sizes=[31, 29, 27, 13], small_kernel=5),
            "replknet_xl": dict(large_kernel_sizes=[27, 27, 27, 13], small_kernel=None, dw_ratio=1.5)}[factory_name]
    kwargs.setdefault("num_classes", 10)
    return models.RepLKNet(layers=[1, 1, 1, 1], channels=[8, 8, 16, 16], **base, **kwargs)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_dict_matches_published_layout_and_loads_strictly(name):
    published = json.loads(KEY_FILE.read_text())[name]
    with torch.device("meta"):
        model = FACTORIES[name]()
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == published["train"]
    synthesized = {k: torch.zeros(shape, device="meta") for k, shape in published["train"].items()}
    model.load_state_dict(synthesized, strict=True, assign=True)
    model.eval()
    model.structural_reparam()
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == published["reparam"]
    with torch.device("meta"):
        merged = FACTORIES[name](small_kernel_merged=True)
    merged.load_state_dict({k: torch.zeros(s, device="meta") for k, s in published["reparam"].items()},
                           strict=True, assign=True)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_reparam_preserves_outputs_float64(name):
    torch.manual_seed(0)
    model = _tiny(name).double().eval()
    randomize_bn(model)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    before = model(x)
    assert model.structural_reparam() == 4
    after = model(x)
    assert all(isinstance(m.lkb_reparam, replk_ops.LargeKernelDWConv2d)
               for m in model.modules() if isinstance(m, models.ReparamLargeKernelConv))
    assert ((after - before).abs().max() / before.abs().max()).item() < 1e-10


def test_reparam_block_float32():
    block = models.RepLKBlock(8, 12, 13, 5, drop_path=0.0).eval()
    randomize_bn(block)
    x = torch.randn(2, 8, 20, 20)
    before = block(x)
    models.structural_reparam(block)
    assert ((block(x) - before).abs().max() / before.abs().max()).item() < 1e-4


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_training_step_changes_weights_and_matches_conv2d(name):
    torch.manual_seed(0)
    model = _tiny(name, drop_path_rate=0.0)
    reference = _tiny(name, drop_path_rate=0.0)
    reference.load_state_dict(model.state_dict())
    for m in reference.modules():  # the same model on nn.Conv2d
        for child_name, child in list(m.named_children()):
            if isinstance(child, replk_ops.LargeKernelDWConv2d):
                conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, padding=child.padding,
                                 groups=child.groups, bias=child.bias is not None)
                conv.weight, conv.bias = child.weight, child.bias
                setattr(m, child_name, conv)
    x = torch.randn(2, 3, 64, 64)
    target = torch.tensor([1, 7])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(x), target).backward()
    F.cross_entropy(reference(x), target).backward()
    lk = model.stages[0].blocks[0].large_kernel.lkb_origin.conv
    lk_ref = reference.stages[0].blocks[0].large_kernel.lkb_origin.conv
    # relative to the gradient's largest magnitude: "auto" may pick fft, whose error is spread evenly
    # (a near-zero tap is off by about 1e-7 of the largest, not by 1e-3 of itself)
    assert max_rel_error(lk.weight.grad, lk_ref.weight.grad) < 1e-4
    before = lk.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, lk.weight)


def test_checkpointing_and_feature_outputs():
    model = _tiny("replknet31b", use_checkpoint=True, out_indices=(1, 3), num_classes=None).train()
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    features = model(x)
    assert [f.shape[1] for f in features] == [8, 16]
    sum(f.sum() for f in features).backward()
    assert x.grad is not None


@pytest.mark.parametrize("kwargs,text", [
    (dict(large_kernel_sizes=[30, 29, 27, 13]), "odd"),
    (dict(small_kernel=33), "small_kernel"),
    (dict(layers=[1, 1, 1]), "equal lengths"),
])
def test_invalid_configurations_raise(kwargs, text):
    config = dict(large_kernel_sizes=[31, 29, 27, 13], layers=[1, 1, 1, 1], channels=[8, 8, 16, 16], small_kernel=5)
    config.update(kwargs)
    with pytest.raises(ValueError, match=text):
        models.RepLKNet(**config)


def test_invalid_block_configurations_raise():
    with pytest.raises(ValueError, match="small_kernel"):
        models.ReparamLargeKernelConv(8, 8, 13, 1, 8, small_kernel=15)
    with pytest.raises(ValueError, match="out_channels"):
        models.ReparamLargeKernelConv(8, 16, 13, 1, 8, small_kernel=5)
    with pytest.raises(ValueError, match="kernel_size"):
        models.ReparamLargeKernelConv(8, 8, 12, 1, 8, small_kernel=5)


def test_dilated_reparam_matches_running_the_branches():
    torch.manual_seed(0)
    c, k = 4, 13
    large = torch.randn(c, 1, k, k, dtype=torch.float64)
    bns = [nn.BatchNorm2d(c).double().eval() for _ in range(4)]
    for bn in bns:
        randomize_bn(bn)
    branches = [(torch.randn(c, 1, 5, 5, dtype=torch.float64), bns[1], 1),
                (torch.randn(c, 1, 5, 5, dtype=torch.float64), bns[2], 2),
                (torch.randn(c, 1, 3, 3, dtype=torch.float64), bns[3], 3)]
    x = torch.randn(2, c, 17, 15, dtype=torch.float64)
    expected = bns[0](F.conv2d(x, large, padding=k // 2, groups=c))
    for weight, bn, dilation in branches:
        span = (weight.shape[2] - 1) * dilation + 1
        expected = expected + bn(F.conv2d(x, weight, padding=span // 2, dilation=dilation, groups=c))
    kernel, bias = merge_dilated_branches(large, bns[0], branches)
    got = replk_ops.dwconv2d(x, kernel, bias)
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-10
    with pytest.raises(ValueError, match="larger than the large kernel"):
        merge_dilated_branches(large, bns[0], [(torch.randn(c, 1, 5, 5, dtype=torch.float64), bns[1], 4)])


def test_compat_install_resolves_the_original_import():
    import replk_ops.compat

    replk_ops.compat.install()
    from depthwise_conv2d_implicit_gemm import DepthWiseConv2dImplicitGEMM

    conv = DepthWiseConv2dImplicitGEMM(6, 13, bias=False)
    ref = nn.Conv2d(6, 6, 13, padding=6, groups=6, bias=False)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 6, 20, 20, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = conv(x), ref(x_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(torch.randn(1, 6, 9, 9)).dtype == torch.bfloat16
