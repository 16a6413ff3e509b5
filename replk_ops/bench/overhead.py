"""Per-call host overhead of replk_ops over ``nn.Conv2d``: a layer so small (1x8x8x8, 7x7) that the
convolution costs almost nothing, timed by the calling thread's CPU time on one torch thread, the
two interleaved round by round so that a busy machine slows both alike, and stopped at a wall-clock
cap. On CUDA the thread's time is the host's launch work (kernels run asynchronously)."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List

import torch
from torch import nn

from .timing import Timing, interleaved_rounds, summarize

ROUNDS = 9
CALLS_PER_ROUND = 200
WALL_CAP_S = 20.0  # per pass (inference, fwd+bwd): a busy machine gets fewer rounds, never a longer wait
MIN_ROUNDS = 5  # fewer: the line says the number is noise


def interleaved_differences_us(baseline: Callable[[], object], candidate: Callable[[], object],
                               rounds: int = ROUNDS, calls: int = CALLS_PER_ROUND,
                               wall_cap_s: float = WALL_CAP_S) -> List[float]:
    """(candidate - baseline) thread CPU microseconds per call, one value per round (the two take
    turns, ``timing.interleaved_rounds``); rounds stop early at ``wall_cap_s`` of wall time (at
    least one round runs)."""
    baseline(), candidate()  # first calls plan, allocate and build oneDNN primitives
    diffs, start = [], time.perf_counter()
    pair = {"baseline": baseline, "candidate": candidate}
    for i, per_call in enumerate(interleaved_rounds(pair, time.thread_time, calls)):
        diffs.append((per_call["candidate"] - per_call["baseline"]) * 1e6)
        if i + 1 >= rounds or time.perf_counter() - start >= wall_cap_s:
            break
    return diffs


def interleaved_difference_us(baseline: Callable[[], object], candidate: Callable[[], object],
                              rounds: int = ROUNDS, calls: int = CALLS_PER_ROUND) -> float:
    """Median over rounds of (candidate - baseline) thread CPU microseconds per call."""
    return statistics.median(interleaved_differences_us(baseline, candidate, rounds, calls))


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
    return {name: timing.median_ms for name, timing in measure_host_overhead(device).items()}


def measure_host_overhead(device: torch.device) -> Dict[str, Timing]:
    """{"inference": ..., "fwd+bwd": ...}: the per-round differences in microseconds (the Timing's
    "_ms" fields hold microseconds here), their median, p20-p80 and how many rounds ran (fewer
    than ROUNDS where the wall-clock cap hit)."""
    from ..modules import LargeKernelDWConv2d

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thread CPU time sees only this thread's work
    try:
        conv = nn.Conv2d(8, 8, 7, padding=3, groups=8).to(device)
        fast = LargeKernelDWConv2d.from_conv2d(conv)
        x = torch.randn(1, 8, 8, 8, device=device)
        grad_out = torch.randn(1, 8, 8, 8, device=device)
        (conv_inf, conv_train), (fast_inf, fast_train) = (training_steps(conv, x, grad_out),
                                                          training_steps(fast, x, grad_out))
        return {"inference": summarize(interleaved_differences_us(conv_inf, fast_inf)),
                "fwd+bwd": summarize(interleaved_differences_us(conv_train, fast_train))}
    finally:
        torch.set_num_threads(threads)


def _cell(timing: Timing) -> str:
    cell = f"{timing.median_ms:+.1f} us (p20-p80 {timing.p20_ms:+.1f} to {timing.p80_ms:+.1f})"
    if timing.samples < MIN_ROUNDS:
        return cell + " too few rounds"
    return cell + (" within noise" if timing.p20_ms <= 0 <= timing.p80_ms else "")


def overhead_line(found: Dict[str, Timing]) -> str:
    rounds = min(t.samples for t in found.values())
    return (f"host overhead per call over nn.Conv2d (1x8x8x8 k7, one thread, thread CPU time, {rounds} interleaved "
            f"rounds): inference {_cell(found['inference'])}, fwd+bwd {_cell(found['fwd+bwd'])}")
