"""Timers: triton.testing.do_bench (L2 flushed between repetitions) or CUDA events on GPU,
torch.utils.benchmark on CPU. Each returns (median, p20, p80) in milliseconds."""
from __future__ import annotations

import statistics
from typing import Callable, Tuple

import torch


def _quantiles(samples_ms) -> Tuple[float, float, float]:
    samples = sorted(samples_ms)
    if len(samples) == 1:
        return samples[0], samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=10, method="inclusive")
    return statistics.median(samples), cuts[1], cuts[7]


def time_cpu(fn: Callable, min_run_time: float) -> Tuple[float, float, float]:
    from torch.utils.benchmark import Timer

    fn()  # warm-up (first-call allocations, oneDNN primitive creation)
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return _quantiles([t * 1e3 for t in measurement.times])


def time_cuda(fn: Callable, rep_ms: float) -> Tuple[float, float, float]:
    try:
        from triton.testing import do_bench
    except ImportError:
        return _time_cuda_events(fn, rep_ms)
    median, p20, p80 = do_bench(fn, warmup=max(25, rep_ms // 4), rep=rep_ms, quantiles=[0.5, 0.2, 0.8])
    return median, p20, p80


def _time_cuda_events(fn: Callable, rep_ms: float) -> Tuple[float, float, float]:
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
    return _quantiles(samples)
