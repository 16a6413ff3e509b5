"""Per-call host overhead of replk_ops over ``nn.Conv2d``: a layer so small (1x8x8x8, 7x7) that the
convolution costs almost nothing, timed by the calling thread's CPU time, the two interleaved round
by round so that a busy machine slows both alike. On CUDA the thread's time is the host's launch
work (kernels run asynchronously)."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict

import torch
from torch import nn

ROUNDS = 15
CALLS_PER_ROUND = 300


def thread_seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls


def interleaved_difference_us(baseline: Callable[[], object], candidate: Callable[[], object],
                              rounds: int = ROUNDS, calls: int = CALLS_PER_ROUND) -> float:
    """Median over rounds of (candidate - baseline) thread CPU microseconds per call."""
    baseline(), candidate()  # first calls plan, allocate and build oneDNN primitives
    diffs = []
    for i in range(rounds):
        order = (baseline, candidate) if i % 2 == 0 else (candidate, baseline)
        times = {id(fn): thread_seconds_per_call(fn, calls) for fn in order}
        diffs.append((times[id(candidate)] - times[id(baseline)]) * 1e6)
    return statistics.median(diffs)


def training_steps(module: nn.Module, x: torch.Tensor, grad_out: torch.Tensor):
    """(inference call, training step) of ``module`` on ``x``, with ``grad_out`` as the output's
    gradient (dense, in the output's layout, as a next layer would give it)."""
    def inference():
        with torch.no_grad():
            module(x)

    xg = x.detach().requires_grad_()

    def training():
        module(xg).backward(grad_out)
        module.zero_grad(set_to_none=True)
        xg.grad = None
    return inference, training


def host_overhead_us(device: torch.device) -> Dict[str, float]:
    """{"inference": us, "fwd+bwd": us} that LargeKernelDWConv2d adds to nn.Conv2d per call."""
    from ..modules import LargeKernelDWConv2d

    conv = nn.Conv2d(8, 8, 7, padding=3, groups=8).to(device)
    fast = LargeKernelDWConv2d.from_conv2d(conv)
    x = torch.randn(1, 8, 8, 8, device=device)
    grad_out = torch.randn(1, 8, 8, 8, device=device)
    (conv_inf, conv_train), (fast_inf, fast_train) = training_steps(conv, x, grad_out), training_steps(fast, x, grad_out)
    return {"inference": interleaved_difference_us(conv_inf, fast_inf),
            "fwd+bwd": interleaved_difference_us(conv_train, fast_train)}


def overhead_line(us: Dict[str, float]) -> str:
    return (f"host overhead per call over nn.Conv2d (1x8x8x8 k7, thread CPU time, median of {ROUNDS} interleaved "
            f"rounds): inference {us['inference']:+.1f} us, fwd+bwd {us['fwd+bwd']:+.1f} us")
