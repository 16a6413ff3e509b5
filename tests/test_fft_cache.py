"""The fft backend's kernel-spectrum cache: reused while the weight is unchanged, recomputed after
every kind of change (checked against nn.Conv2d on the same parameters), bounded, and never
keeping a freed weight's entry."""
import gc

import pytest
import torch

import replk_ops
from replk_ops import catalog

FFT = catalog.by_name("fft").runner


def _module(k=9, c=3):
    conv = torch.nn.Conv2d(c, c, k, padding=k // 2, groups=c)
    fast = replk_ops.LargeKernelDWConv2d.from_conv2d(conv, backend="fft").eval()
    return conv.eval(), fast


def _check(conv, fast, x):
    with torch.no_grad():
        torch.testing.assert_close(fast(x), conv(x), rtol=1e-4, atol=1e-4)


def test_cache_hits_on_repeated_inference_calls():
    conv, fast = _module()
    x = torch.randn(2, 3, 14, 14)
    hits = FFT.cache.hits
    for _ in range(3):
        _check(conv, fast, x)
    assert FFT.cache.hits == hits + 2


@pytest.mark.parametrize("edit", ["in_place", "through_data", "load_state_dict", "assign_data", "to_double",
                                  "train_eval_step", "parameter_replaced"])
def test_cache_follows_every_weight_change(edit):
    conv, fast = _module()
    x = torch.randn(1, 3, 14, 14)
    _check(conv, fast, x)  # fills the cache
    if edit == "in_place":
        with torch.no_grad():
            fast.weight.mul_(-2)
    elif edit == "through_data":  # bypasses the version counter
        fast.weight.data.mul_(-2)
    elif edit == "load_state_dict":
        other = torch.nn.Conv2d(3, 3, 9, padding=4, groups=3)
        fast.load_state_dict(other.state_dict())
    elif edit == "assign_data":
        fast.weight.data = torch.randn_like(fast.weight)
    elif edit == "to_double":
        fast.double()
        conv.double()
        x = x.double()
    elif edit == "train_eval_step":
        fast.train()
        opt = torch.optim.SGD(fast.parameters(), lr=0.5)
        fast(torch.randn(1, 3, 14, 14)).square().sum().backward()
        opt.step()
        fast.eval()
    elif edit == "parameter_replaced":
        fast.weight = torch.nn.Parameter(torch.randn_like(fast.weight))
    conv.weight, conv.bias = fast.weight, fast.bias  # the plain conv follows the same parameters
    _check(conv, fast, x)


def test_cache_follows_structural_reparam(planner_env):
    from replk_ops import models
    from conv_testing import randomize_bn

    planner_env("REPLK_OPS_BACKEND", "fft")
    block = models.ReparamLargeKernelConv(4, 4, kernel_size=13, stride=1, groups=4, small_kernel=5).eval()
    randomize_bn(block)
    x = torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        before = block(x)
        block(x)  # served from the cache
        block.merge_kernel()
        after = block(x)
        assert replk_ops.explain(x, block.lkb_reparam.weight).backend == "fft"
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_cache_is_bounded_and_drops_freed_weights():
    cache = FFT.cache
    cache.clear()
    x = torch.randn(1, 2, 10, 10)
    weights = [torch.randn(2, 1, 7, 7) for _ in range(cache.max_entries + 5)]
    with torch.no_grad():
        for w in weights:
            replk_ops.dwconv2d(x, w, backend="fft")
    assert len(cache) == cache.max_entries
    del weights, w
    gc.collect()
    assert len(cache) == 0


def test_cache_keeps_one_entry_per_weight_across_shapes():
    cache = FFT.cache
    cache.clear()
    w = torch.randn(2, 1, 7, 7)
    with torch.no_grad():
        for size in (10, 12, 14, 20):
            out = replk_ops.dwconv2d(torch.randn(1, 2, size, size), w, backend="fft")
            assert out.shape[-1] == size
    assert len(cache) == 1


def test_training_step_reuses_the_forward_spectrum_once():
    conv = replk_ops.LargeKernelDWConv2d(3, 9, backend="fft")
    x = torch.randn(1, 3, 12, 12, requires_grad=True)
    FFT.cache.clear()
    hits = FFT.cache.hits
    conv(x).sum().backward()
    assert FFT.cache.hits == hits + 1  # the backward took the forward's spectrum ...
    assert len(FFT.cache) == 0         # ... and nothing stays after the step
