"""CPU speed regression suite (pytest-benchmark). Not part of the test run (testpaths is tests/);
speed is tracked here, never asserted in unit tests.

    python -m pytest benchmarks/test_cpu_regression.py -n 0 --benchmark-autosave   # record a baseline
    python -m pytest benchmarks/test_cpu_regression.py -n 0 --benchmark-compare \\
        --benchmark-compare-fail=median:25%                                         # fail on a 25% slowdown

(-n 0: in one process; pytest-benchmark does not time under pytest-xdist, which the suite's
addopts turn on.)

Each case times replk_ops and nn.Conv2d (NCHW) on the same tensors, grouped per shape, so a report
shows the ratio beside the absolute times.
"""
import pytest
import torch
import torch.nn.functional as F

import replk_ops

# RepLKNet-31B's four stage shapes at batch 1 (the CPU inference case)
SHAPES = {
    "stage1-128x56x56-k31": (1, 128, 56, 56, 31),
    "stage2-256x28x28-k29": (1, 256, 28, 28, 29),
    "stage3-512x14x14-k27": (1, 512, 14, 14, 27),
    "stage4-1024x7x7-k13": (1, 1024, 7, 7, 13),
}


def _tensors(shape, grad):
    n, c, h, w, k = shape
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w, requires_grad=grad)
    weight = torch.randn(c, 1, k, k, requires_grad=grad)
    return x, weight, k // 2


def _forward(impl, x, weight, pad):
    if impl == "replk_ops":
        return replk_ops.dwconv2d(x, weight, padding=pad)
    return F.conv2d(x, weight, padding=pad, groups=x.shape[1])


@pytest.mark.parametrize("impl", ["replk_ops", "nn.Conv2d"])
@pytest.mark.parametrize("name", SHAPES)
def test_forward(benchmark, name, impl):
    x, weight, pad = _tensors(SHAPES[name], grad=False)
    benchmark.group = f"fwd {name}"
    with torch.no_grad():
        benchmark(_forward, impl, x, weight, pad)


@pytest.mark.parametrize("impl", ["replk_ops", "nn.Conv2d"])
@pytest.mark.parametrize("name", SHAPES)
def test_forward_backward(benchmark, name, impl):
    x, weight, pad = _tensors(SHAPES[name], grad=True)
    grad_out = torch.randn(x.shape)
    benchmark.group = f"fwd+bwd {name}"

    def step():
        _forward(impl, x, weight, pad).backward(grad_out)
        x.grad = weight.grad = None

    if impl == "nn.Conv2d" and name.startswith("stage1"):  # ~0.3 s a step: a few rounds are enough
        benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    else:
        benchmark(step)
