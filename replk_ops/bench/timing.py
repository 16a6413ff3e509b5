"""Timers, each returning Timings in milliseconds: triton.testing.do_bench (L2 flushed between
repetitions) or CUDA events on GPU; on CPU, variants interleaved round by round on a clock that a
busy machine does not inflate.

CPU: with one torch thread (the bench's default) the clock is the calling thread's CPU time, so
time spent descheduled while other processes run is not counted; with more threads the work runs
on threads the calling one cannot see, so the clock is the wall clock and the numbers are as noisy
as the machine. Variants run in turns within each round (the first one rotating), so a burst of
load slows them alike, and every step stops at a wall-clock cap however busy the machine is.

The CPU timer is our own rather than torch.utils.benchmark: importing that pulls in torch's
extension build tooling, which warns about a missing CUDA runtime on every CPU machine."""
from __future__ import annotations

import itertools
import math
import statistics
import time
from typing import Callable, Dict, Iterator, List, Mapping, NamedTuple, Sequence

import torch

# A CPU sample groups enough calls to last this long, so the clock's resolution stays negligible.
MIN_SAMPLE_S = 1e-3
# Fewer samples than this give no spread worth a verdict: the row says "too few samples".
MIN_SAMPLES = 5
# Rounds stop here even when the budget is not spent (calls far shorter than a sample).
MAX_ROUNDS = 200
# Wall-clock seconds one interleaved group may take, however busy the machine or slow the calls.
WALL_CAP_S = 60.0


class Timing(NamedTuple):
    median_ms: float
    p20_ms: float
    p80_ms: float
    samples: int  # how many measurements the quantiles come from


def cpu_clock(threads: int) -> Callable[[], float]:
    """Thread CPU time with one torch thread, else the wall clock (see the module's docstring)."""
    return time.thread_time if threads == 1 else time.perf_counter


def clock_name(threads: int) -> str:
    return "thread CPU time" if threads == 1 else f"wall clock, {threads} threads"


def summarize(samples_ms: Sequence[float]) -> Timing:
    samples = sorted(samples_ms)
    if not samples:
        raise ValueError("samples_ms: expected at least one measurement, got none")
    if len(samples) == 1:
        return Timing(samples[0], samples[0], samples[0], 1)
    cuts = statistics.quantiles(samples, n=10, method="inclusive")
    return Timing(statistics.median(samples), cuts[1], cuts[7], len(samples))


def _per_call(fn: Callable, calls: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(calls):
        fn()
    return (clock() - start) / calls


def interleaved_rounds(fns: Mapping[str, Callable], clock: Callable[[], float], calls=1,
                       rotate: bool = True) -> Iterator[Dict[str, float]]:
    """The one interleaved CPU timer, round after round (the caller stops): in each round every
    variant of ``fns`` runs ``calls`` calls (an int, or name -> int) in turn, timed on ``clock``;
    yields name -> seconds per call. With ``rotate``, round i starts with variant i, so no variant
    always runs first. ``fns`` is read afresh each round: a caller may drop a variant between rounds."""
    for i in itertools.count():
        names = list(fns)
        if not names:
            return
        if rotate:
            names = names[i % len(names):] + names[:i % len(names)]
        yield {name: _per_call(fns[name], calls if isinstance(calls, int) else calls[name], clock) for name in names}


def interleaved_samples(fns: Mapping[str, Callable], budget_s: float, clock: Callable[[], float] = time.thread_time,
                        wall_cap_s: float = WALL_CAP_S, min_samples: int = MIN_SAMPLES) -> Dict[str, List[float]]:
    """name -> milliseconds per call of each of ``fns``, one sample per round, timed in turns: one
    warm-up call each (first-call allocations, oneDNN primitives, the planner's measurement), then
    rounds in which every variant gives one sample, until each has spent ``budget_s`` of ``clock``
    over at least ``min_samples`` rounds, or ``wall_cap_s`` of wall time has passed (then fewer
    samples). Round i starts with variant i, so no variant always runs first. How many calls make a
    sample comes from the first call, or from a second where the first took a sample's length."""
    names = list(fns)
    wall_start = time.perf_counter()
    calls = {}
    for name in names:
        first = _per_call(fns[name], 1, clock)
        if first >= MIN_SAMPLE_S:
            # the first call may have planned and timed candidates (tens of ms) for a call of
            # microseconds: sampled one call at a time, beside a variant sampled many calls at a
            # time, its samples would carry the clock's and the caches' cost (+15 us at 60 us)
            first = _per_call(fns[name], 1, clock)
        calls[name] = max(1, math.ceil(MIN_SAMPLE_S / max(first, 1e-9)))
    samples = {name: [] for name in names}
    spent = dict.fromkeys(names, 0.0)
    for i, per_call in enumerate(interleaved_rounds(fns, clock, calls)):
        for name, seconds in per_call.items():
            samples[name].append(seconds * 1e3)
            spent[name] += seconds * calls[name]
        enough = i + 1 >= min_samples and min(spent.values()) >= budget_s
        if enough or i + 1 >= MAX_ROUNDS or time.perf_counter() - wall_start >= wall_cap_s:
            break
    return samples


def time_interleaved(fns: Mapping[str, Callable], budget_s: float, clock: Callable[[], float] = time.thread_time,
                     wall_cap_s: float = WALL_CAP_S, min_samples: int = MIN_SAMPLES) -> Dict[str, Timing]:
    """name -> Timing of each of ``fns``, sampled by ``interleaved_samples``."""
    samples = interleaved_samples(fns, budget_s, clock, wall_cap_s, min_samples)
    return {name: summarize(values) for name, values in samples.items()}


def time_cpu(fn: Callable, min_run_time: float, clock: Callable[[], float] = time.thread_time,
             wall_cap_s: float = WALL_CAP_S) -> Timing:
    """One function timed on its own, by the same rules as ``time_interleaved``."""
    return time_interleaved({"fn": fn}, min_run_time, clock, wall_cap_s)["fn"]


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
