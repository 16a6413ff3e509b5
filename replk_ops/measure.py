"""Timing candidate implementations on tensors of a problem's shape: the planner's measurements.

On CUDA each candidate is timed with CUDA events (median of a few runs after a warm-up). On CPU
the candidates take turns round by round, so that a busy machine slows all of them alike, and each
keeps its least disturbed run (docs/design.md, "Planner").
"""
from __future__ import annotations

import math
import time
from typing import Callable, Dict

import torch

from . import measure3d
from ._layout import CHANNELS_LAST
from .backends.implementation import Implementation
from .bench.timing import interleaved_rounds
from .problem import SMALL_BATCH, Problem

REPEATS = 3
# A CPU candidate this many times slower than the best is not run again (it has lost, and
# PyTorch's naive NCHW loop can take seconds on a large map).
GIVE_UP_FACTOR = 4.0
# On CPU the candidates take turns for at least CPU_MIN_ROUNDS rounds and until CPU_BUDGET_MS is
# spent (at most CPU_MAX_ROUNDS): the minimum of many runs is what survives a noisy, shared machine.
CPU_BUDGET_MS = 30.0
CPU_MIN_ROUNDS = 5
CPU_MAX_ROUNDS = 40
# Wall time: the candidates run on every torch thread, which a CPU-time clock of this thread would
# not see; the minimum over rounds is what survives a busy machine. Tests substitute a fake clock.
_clock = time.perf_counter


def workload(problem: Problem, batch: int):
    """Random tensors of the problem's shape, layout and dtype for timing each pass."""
    if problem.rank == 3:
        return measure3d.workload(problem, batch)
    fmt = torch.channels_last if problem.layout == CHANNELS_LAST else torch.contiguous_format
    make = dict(dtype=problem.dtype, device=problem.device)
    x = torch.randn(batch, problem.channels, problem.height, problem.width, **make).contiguous(memory_format=fmt)
    weight = torch.randn(problem.channels, 1, problem.kh, problem.kw, **make)
    bias = torch.randn(problem.channels, **make)
    grad_out = torch.randn(batch, problem.channels, *problem.output_hw(), **make).contiguous(memory_format=fmt)
    return x, weight, bias, grad_out


def pass_runner(problem: Problem, pass_name: str, impl: Implementation, tensors) -> Callable[[], object]:
    """The pass as a call runs it, outputs in the caller's layout included (a runner whose output
    needs a copy into it is slower than its kernel alone)."""
    if problem.rank == 3:
        return measure3d.pass_runner(problem, pass_name, impl, tensors)
    from .passes import run_bwd_input_on, run_bwd_weight_on, run_fwd_on  # passes -> planner -> here

    x, weight, bias, grad_out = tensors
    ph, pw, dilation = problem.ph, problem.pw, problem.dilation
    if pass_name == "fwd":
        return lambda: run_fwd_on(impl, x, weight, bias, ph, pw, dilation)
    if pass_name == "bwd_input":
        return lambda: run_bwd_input_on(impl, grad_out, weight, ph, pw, dilation)
    return lambda: run_bwd_weight_on(impl, grad_out, x, problem.kh, problem.kw, ph, pw, dilation)


def time_cuda(run: Callable[[], object]) -> float:
    run()  # warm-up: compiles Triton kernels, sets shared-memory attributes
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(REPEATS):
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def _time_cpu(runs: Dict[str, Callable[[], object]]) -> Dict[str, float]:
    """Milliseconds per run of each candidate: the candidates take turns, round by round, so that a
    busy machine slows all of them alike, and each keeps its least disturbed run. A candidate that
    raises is left out; one slower than GIVE_UP_FACTOR times the best is not run again."""
    best: Dict[str, float] = {}
    live = dict(runs)
    for name, run in list(live.items()):  # warm-up: oneDNN builds its primitives on the first call
        try:
            run()
        except Exception:  # noqa: BLE001 - a failing candidate is simply not chosen
            del live[name]
    spent, rounds = 0.0, 0
    # in fixed order, over the candidates still live (read afresh each round)
    for per_call in interleaved_rounds(live, _clock, rotate=False):
        for name, seconds in per_call.items():
            spent += seconds * 1e3
            best[name] = min(best.get(name, math.inf), seconds * 1e3)
        leader = min(best.values())
        for name in [n for n in live if best[n] > GIVE_UP_FACTOR * leader]:
            del live[name]  # a clear loser (PyTorch's naive loop can take seconds) runs no more
        rounds += 1
        if rounds >= CPU_MAX_ROUNDS or (rounds >= CPU_MIN_ROUNDS and spent >= CPU_BUDGET_MS):
            break
    return best


def time_all(problem: Problem, runs: Dict[str, Callable[[], object]]) -> Dict[str, float]:
    if problem.device_type != "cuda":
        return _time_cpu(runs)
    times = {}
    for name, run in runs.items():
        try:
            times[name] = time_cuda(run)
        except Exception:  # noqa: BLE001 - a candidate that fails here (a launch or compile error) is
            continue       # simply not chosen; a direct call reports it
    return times


def time_steps(problem: Problem, batch: Optional[int], native_step, planned_step) -> Dict[str, float]:
    """{"torch": ms, "planned": ms} for one fwd+bwd each on tensors of the problem's shape."""
    if not batch:
        batch = 1 if problem.small_batch else SMALL_BATCH
    x, weight, bias, grad_out = workload(problem, batch)
    x, weight, bias = (t.requires_grad_() for t in (x, weight, bias))
    steps = {name: (lambda step=step: step(x, weight, bias).backward(grad_out))
             for name, step in (("torch", native_step), ("planned", planned_step))}
    # The caller may be inside activation checkpointing, whose saved-tensor hooks would count the
    # tensors these steps save as the layer's own: identity hooks, innermost, keep them apart.
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        return time_all(problem, steps)


