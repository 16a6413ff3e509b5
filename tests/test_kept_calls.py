"""A converted layer keeps its native ready call (drop_in.py): it plans again whenever something its
plan depends on changes, never serves a call it was not made for, and pickles, copies and scripts."""
import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

import replk_ops
from replk_ops import LargeKernelDWConv2d, LargeKernelDWConv3d, drop_in

RANKS = {
    "2d": (LargeKernelDWConv2d, F.conv2d, (2, 4, 11, 9), torch.channels_last),
    "3d": (LargeKernelDWConv3d, F.conv3d, (2, 4, 6, 7, 5), torch.channels_last_3d),
}


@pytest.fixture(params=sorted(RANKS))
def rank(request):
    return RANKS[request.param]


@pytest.fixture
def plans(monkeypatch):
    """How many times a module asked for a ready call (each time it did not use its kept one)."""
    asked = []
    real = drop_in.ready_call

    def counting(*args):
        asked.append(args[0])
        return real(*args)

    monkeypatch.setattr(drop_in, "ready_call", counting)
    return asked


def _expected(conv_fn, module, x):
    return conv_fn(x, module.weight, module.bias, 1, module.padding, module.dilation, module.in_channels)


def test_the_kept_call_serves_only_the_signature_it_was_made_for(rank, plans):
    cls, conv_fn, shape, channels_last = rank
    module = cls(4, 3, backend="torch")  # PyTorch's own call for every pass: the plan is native
    calls = 0

    def check(x, replans: bool):
        nonlocal calls
        calls += replans
        y = module(x)
        assert len(plans) == calls, "planned again" if not replans else "the kept call served another signature"
        torch.testing.assert_close(y, _expected(conv_fn, module, x), rtol=0, atol=0)
        return y

    check(torch.randn(shape), True)
    assert module._kept_call is not None
    check(torch.randn(shape), False)
    check(torch.randn(shape).to(memory_format=channels_last), True)  # another layout
    check(torch.randn((1,) + shape[1:]), True)  # another shape
    check(torch.randn((1,) + shape[1:]), False)
    module.double()  # parameters converted in place: the kept call is dropped
    assert module._kept_call is None
    check(torch.randn(shape, dtype=torch.float64), True)
    with torch.no_grad():  # autograd no longer records
        check(torch.randn(shape, dtype=torch.float64), True)
        check(torch.randn(shape, dtype=torch.float64), False)
    replk_ops.reset()  # every plan forgotten, the kept ones too
    check(torch.randn(shape, dtype=torch.float64), True)
    module.padding = (0,) * (len(shape) - 2)  # an nn.ConvNd honours a changed attribute
    y = check(torch.randn(shape, dtype=torch.float64), True)
    assert y.shape[2:] == tuple(s - 2 for s in shape[2:])


def test_a_new_dtype_or_channel_count_reaches_the_checks(rank):
    cls, _, shape, _ = rank
    module = cls(4, 3, backend="torch")
    module(torch.randn(shape))
    with pytest.raises(TypeError, match="weight: expected dtype torch.float64"):
        module(torch.randn(shape, dtype=torch.float64))
    with pytest.raises(ValueError, match="channels"):
        module(torch.randn((shape[0], 3) + shape[2:]))


def test_only_a_native_plan_is_kept(rank, plans):
    cls, conv_fn, shape, _ = rank
    module = cls(4, 3, backend="direct")
    x = torch.randn(shape)
    for _ in range(2):
        torch.testing.assert_close(module(x), _expected(conv_fn, module, x))
    assert module._kept_call is None and len(plans) == 2


def test_autocast_and_tracing_do_not_use_the_kept_call(rank):
    cls, conv_fn, shape, _ = rank
    module = cls(4, 3, backend="torch")
    x = torch.randn(shape)
    module(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(x).dtype == torch.bfloat16
    traced = torch.jit.trace(module, (x,))
    assert "aten::_convolution" in str(traced.inlined_graph)
    torch.testing.assert_close(traced(x), _expected(conv_fn, module, x))


def test_a_module_with_a_kept_call_pickles_copies_and_scripts(rank):
    cls, conv_fn, shape, _ = rank
    module = cls(4, 3, backend="torch")
    x = torch.randn(shape)
    module(x)
    assert module._kept_call is not None
    for clone in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        assert clone._kept_call is None
        torch.testing.assert_close(clone(x), _expected(conv_fn, module, x), rtol=0, atol=0)
    scripted = torch.jit.script(module)
    torch.testing.assert_close(scripted(x), _expected(conv_fn, module, x))


class _Doubled(torch.nn.Module):
    def forward(self, weight):
        return 2 * weight


def test_parametrized_and_weight_normed_parameters_are_the_ones_used(rank):
    """Both move a parameter out of the module's parameter dict, which the call reads first."""
    cls, conv_fn, shape, _ = rank
    x = torch.randn(shape)
    module = cls(4, 3, backend="torch")
    torch.nn.utils.parametrize.register_parametrization(module, "bias", _Doubled())
    for _ in range(2):
        torch.testing.assert_close(module(x), _expected(conv_fn, module, x), rtol=0, atol=0)
    assert torch.equal(module.bias, 2 * module.parametrizations.bias.original)
    normed = torch.nn.utils.weight_norm(cls(4, 3, backend="torch"))
    with torch.no_grad():
        normed.weight_g.mul_(3)
    for _ in range(2):
        y = normed(x)
        torch.testing.assert_close(y, _expected(conv_fn, normed, x), rtol=0, atol=0)
    reference = cls(4, 3, backend="torch")
    with torch.no_grad():
        reference.weight.copy_(normed.weight)
        reference.bias.copy_(normed.bias)
    torch.testing.assert_close(y, reference(x), rtol=0, atol=0)
