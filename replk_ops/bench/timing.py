"""Timers: triton.testing.do_bench (L2 flushed between repetitions) or CUDA events on GPU, a
perf_counter loop on CPU. Each returns a Timing in milliseconds.

The CPU timer is our own rather than torch.utils.benchmark: importing that pulls in torch's
extension build tooling, which warns about a missing CUDA runtime on every CPU machine."""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable, NamedTuple, Sequence

import torch

# A CPU sample groups enough calls to last this long, so timer overhead stays negligible.
MIN_SAMPLE_S = 1e-3


class Timing(NamedTuple):
    median_ms: float
    p20_ms: float
    p80_ms: float
    samples: int  # how many measurements the quantiles come from (1: the call outlasted the budget)


def summarize(samples_ms: Sequence[float]) -> Timing:
    samples = sorted(samples_ms)
    if not samples:
        raise ValueError("samples_ms: expected at least one measurement, got none")
    if len(samples) == 1:
        return Timing(samples[0], samples[0], samples[0], 1)
    cuts = statistics.quantiles(samples, n=10, method="inclusive")
    return Timing(statistics.median(samples), cuts[1], cuts[7], len(samples))


def time_cpu(fn: Callable, min_run_time: float) -> Timing:
    """Samples of ``fn`` for about ``min_run_time`` seconds after one warm-up call (first-call
    allocations, oneDNN primitive creation); a call longer than the budget gives one sample."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    calls_per_sample = max(1, math.ceil(MIN_SAMPLE_S / max(first, 1e-9)))
    samples, spent = [], 0.0
    while spent < min_run_time or not samples:
        start = time.perf_counter()
        for _ in range(calls_per_sample):
            fn()
        elapsed = time.perf_counter() - start
        samples.append(elapsed / calls_per_sample * 1e3)
        spent += elapsed
    return summarize(samples)


def time_cuda(fn: Callable, rep_ms: float) -> Timing:
    try:
        from triton.testing import do_bench
    except ImportError:
        return _time_cuda_events(fn, rep_ms)
    # do_bench reports quantiles only; it runs at least a few repetitions within rep_ms
    median, p20, p80 = do_bench(fn, warmup=max(25, rep_ms // 4), rep=rep_ms, quantiles=[0.5, 0.2, 0.8])
    estimate = max(median, 1e-3)
    return Timing(median, p20, p80, max(1, int(rep_ms / estimate)))


def _time_cuda_events(fn: Callable, rep_ms: float) -> Timing:
    flush = torch.empty(256 * 2**20, dtype=torch.int8, device="cuda")
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    samples = []
    total = 0.0
    while total < rep_ms or len(samples) < 5:
        flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end))
        total += samples[-1]
    return summarize(samples)
