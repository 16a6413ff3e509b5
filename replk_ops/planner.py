"""One planner: which implementation runs each pass of a problem, and why.

``plan_pass(problem, pass_name, requested)`` returns a ``PassChoice``: the implementation, how it
was chosen and why every other one was rejected. ``dwconv2d``, ``explain``, the bench and the
tests all go through it, so ``explain`` shows exactly what runs. Choices are cached per (problem,
pass, request); the steady-state call is a dictionary lookup.

How "auto" chooses (docs/design.md, "Planner"):
1. only implementations that can run the problem here and that "auto" may pick on its device;
2. rules, where they settle the choice without a measurement;
3. otherwise the first call of each kind measures the candidates on tensors of the problem's
   shape and keeps the fastest. A kind leaves out the batch size (only whether it is below
   ``SMALL_BATCH``) and the channel count, and rounds the map up to a power of two, so a new batch
   size measures again at most once;
4. where measuring is not possible (during CUDA-graph capture or ``torch.compile`` tracing, under
   ``torch.use_deterministic_algorithms(True)``, or with ``REPLK_OPS_AUTOTUNE=0``), a fixed
   priority, so the same program always picks the same implementation.

The environment (``REPLK_OPS_BACKEND``, ``REPLK_OPS_AUTOTUNE``) is read once, at the first call,
and again after ``reset()``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import torch

from . import _extension, catalog, fft_plan
from ._checks import env_switch, output_size
from ._layout import CHANNELS_LAST, NCHW, layout_name
from .catalog import PASSES, Implementation, check_backend_name

BACKEND_ENV = "REPLK_OPS_BACKEND"
AUTOTUNE_ENV = "REPLK_OPS_AUTOTUNE"
SMALL_BATCH = 16
REPEATS = 3
# A CPU candidate this many times slower than the best is not run again (it has lost, and
# PyTorch's naive NCHW loop can take seconds on a large map).
GIVE_UP_FACTOR = 4.0
# On CPU the candidates take turns for at least CPU_MIN_ROUNDS rounds and until CPU_BUDGET_MS is
# spent (at most CPU_MAX_ROUNDS): the minimum of many runs is what survives a noisy, shared machine.
CPU_BUDGET_MS = 30.0
CPU_MIN_ROUNDS = 5
CPU_MAX_ROUNDS = 40
# PyTorch's own path is the floor of host overhead (no autograd function, no layout copies, and
# for training PyTorch's own backward in C++); another implementation replaces it only when it
# measures this much faster.
NATIVE_MARGIN = 1.10
# PyTorch's CPU conv reaches oneDNN's NCHW depthwise forward only while the kernel is at most this
# wide; wider, NCHW runs a naive loop (1x256x14x14 k15: 3.4 ms against 0.18 ms through
# channels_last; 1x96x56x56 5x51: 52 ms against 3.6 ms, while 51x5 takes 2.2 ms either way).
ONEDNN_NCHW_MAX_SIDE = 13


class Problem(NamedTuple):
    """A depthwise conv call as the planner sees it: no tensors, only what decides the choice."""

    device: str
    dtype: torch.dtype
    layout: str          # "nchw" or "channels_last"
    small_batch: bool    # batch below SMALL_BATCH
    channels: int
    height: int          # the input's map
    width: int
    kh: int
    kw: int
    ph: int
    pw: int
    deterministic: bool

    @property
    def device_type(self) -> str:
        return self.device.split(":", 1)[0]

    @classmethod
    def of(cls, x: torch.Tensor, kh: int, kw: int, ph: int, pw: int, input_hw=None) -> "Problem":
        """The problem of a call on ``x`` (the input, or for an input gradient the output gradient
        with ``input_hw`` the input's map)."""
        height, width = input_hw if input_hw is not None else (x.shape[2], x.shape[3])
        return cls(str(x.device), x.dtype, layout_name(x), x.shape[0] < SMALL_BATCH, x.shape[1], height, width,
                   kh, kw, ph, pw, torch.are_deterministic_algorithms_enabled())

    def output_hw(self) -> Tuple[int, int]:
        return output_size(self.height, self.width, self.kh, self.kw, self.ph, self.pw)

    def kind(self, pass_name: str) -> Tuple:
        """What a measurement is remembered for (see the module's docstring)."""
        return (self.device, pass_name, self.dtype, self.layout, self.small_batch, _size_class(self.height),
                _size_class(self.width), self.kh, self.kw, self.ph, self.pw, self.deterministic)


def _size_class(size: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(size, 1))))


@dataclasses.dataclass(frozen=True)
class Measurement:
    chosen: str
    milliseconds: Dict[str, float]

    def __str__(self) -> str:
        times = ", ".join(f"{name} {ms:.3f} ms" for name, ms in sorted(self.milliseconds.items(), key=lambda kv: kv[1]))
        return f"measured on first use: {times}"


@dataclasses.dataclass(frozen=True)
class PassChoice:
    pass_name: str
    implementation: Implementation
    how: str                              # "requested", "by rule: ...", "measured on first use: ..."
    rejected: Tuple[Tuple[str, str], ...]  # (implementation name, why) for every other one
    measurement: Optional[Measurement] = None
    # False where the choice holds only for now (measuring was blocked by compile tracing or
    # CUDA-graph capture, or explain did not measure): it is not cached.
    final: bool = True

    def __str__(self) -> str:
        # one line for the kernels of a backend that are rejected for one reason
        grouped: Dict[Tuple[str, str], List[str]] = {}
        for name, why in self.rejected:
            grouped.setdefault((catalog.backend_of(name), why), []).append(name)
        lines = [f"{self.pass_name}: {self.implementation.name} ({self.how})"]
        for (backend, why), names in grouped.items():
            label = names[0] if len(names) == 1 else f"{backend} ({len(names)} kernels)"
            lines.append(f"    {label:<20} {why}")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The choice for each pass of one problem; printing it gives a readable report."""

    problem: Problem
    requested: str
    choices: Dict[str, PassChoice]

    @property
    def backend(self) -> str:
        """The backend that runs the forward."""
        return self.choices["fwd"].implementation.backend

    @property
    def reasons(self) -> Dict[str, str]:
        """For the forward: each backend name and why it runs or does not."""
        fwd = self.choices["fwd"]
        described = {}
        for name, why in ((fwd.implementation.name, f"chosen ({fwd.how})"),) + fwd.rejected:
            described.setdefault(catalog.backend_of(name), why)
        return described

    def __str__(self) -> str:
        p = self.problem
        head = (f"replk_ops: {p.device} {catalog.DTYPE_NAMES[p.dtype]} {p.layout} {p.channels}x{p.height}x{p.width}"
                f" k{p.kh}x{p.kw} pad ({p.ph}, {p.pw}), batch {'<' if p.small_batch else '>='} {SMALL_BATCH};"
                f" backend {self.backend!r} (requested {self.requested!r})")
        lines = [head] + [f"  {choice}".replace("\n", "\n  ") for choice in self.choices.values()]
        if _extension.STATUS.loaded and _extension.STATUS.warning:
            lines.append(f"  note: replk_ops._C {_extension.STATUS.summary()}")
        return "\n".join(lines)


# --- settings: the environment, read once --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    backend_override: Optional[str]
    autotune: bool


_SETTINGS: Optional[Settings] = None


def settings() -> Settings:
    global _SETTINGS
    if _SETTINGS is None:
        env = os.environ.get(BACKEND_ENV, "").strip()
        override = check_backend_name(env, argument=f"environment variable {BACKEND_ENV}") if env else None
        _SETTINGS = Settings(override if override != "auto" else None, env_switch(AUTOTUNE_ENV))
    return _SETTINGS


_CHOICES: Dict[Tuple, PassChoice] = {}
_MEASURED: Dict[Tuple, Measurement] = {}
_LOCK = threading.RLock()
_RESET_HOOKS: List[Callable[[], None]] = []


def on_reset(hook: Callable[[], None]) -> None:
    """Call ``hook`` whenever ``reset()`` runs (for caches built on the planner's answers)."""
    _RESET_HOOKS.append(hook)


def reset() -> None:
    """Forget every plan and measurement and read the environment again."""
    global _SETTINGS
    with _LOCK:
        _SETTINGS = None
        _CHOICES.clear()
        _MEASURED.clear()
        _STEPS.clear()
        for hook in _RESET_HOOKS:
            hook()


def effective_request(requested: str) -> str:
    check_backend_name(requested)
    if requested == "auto":
        return settings().backend_override or "auto"
    return requested


# --- choosing ------------------------------------------------------------------------------------

_AUTOTUNE_OFF = f"measuring is off, {AUTOTUNE_ENV}=0"
_DETERMINISTIC = "deterministic algorithms are on, and a choice by timing could differ between runs"
_LASTING_BLOCKS = (_AUTOTUNE_OFF, _DETERMINISTIC)  # part of the settings or of the problem


def _measuring_blocked(problem: Problem) -> Optional[str]:
    """Why "auto" cannot measure now, or None."""
    if not settings().autotune:
        return _AUTOTUNE_OFF
    if problem.deterministic:
        return _DETERMINISTIC
    if torch.compiler.is_compiling():
        return "torch.compile is tracing"
    if problem.device_type == "cuda" and torch.cuda.is_current_stream_capturing():
        return "a CUDA graph is being captured"
    return None


def _cpu_rule(problem: Problem, pass_name: str, names: List[str]) -> Optional[Tuple[str, str]]:
    """A rule that settles a CPU choice between "torch" and "reference" without measuring."""
    if not {"torch", "reference"} <= set(names):
        return None
    full_precision = problem.dtype in (torch.float32, torch.float64)
    if pass_name == "fwd" and problem.layout == CHANNELS_LAST and full_precision:
        return "torch", "channels_last input: PyTorch's own call is the oneDNN route without copies"
    if problem.layout == NCHW and pass_name == "fwd":
        # measured: 51x5 and 49x5 reach oneDNN's NCHW kernel, 5x51 and 15x15 a naive loop
        if problem.kw <= ONEDNN_NCHW_MAX_SIDE:
            return "torch", f"NCHW with a kernel at most {ONEDNN_NCHW_MAX_SIDE} wide: PyTorch reaches oneDNN"
        return "reference", f"PyTorch's NCHW path is a naive loop for kernels over {ONEDNN_NCHW_MAX_SIDE} wide"
    if problem.layout == NCHW and min(problem.kh, problem.kw) > ONEDNN_NCHW_MAX_SIDE:
        return "reference", (f"PyTorch's NCHW path is a naive loop for kernels over {ONEDNN_NCHW_MAX_SIDE} "
                             "on both sides")
    return None


def _cpu_fallback(problem: Problem, names: List[str]) -> str:
    """Without a measurement: PyTorch's own path where oneDNN's NCHW kernel covers the kernel."""
    small = max(problem.kh, problem.kw) <= ONEDNN_NCHW_MAX_SIDE
    if "torch" in names and (small or "reference" not in names):
        return "torch"
    return "reference" if "reference" in names else names[0]


def plan_pass(problem: Problem, pass_name: str, requested: str = "auto", measure: bool = True,
              batch: Optional[int] = None) -> PassChoice:
    """The implementation for ``pass_name`` of ``problem``. ``measure=False`` (``explain``) never
    times anything, and never raises: without a remembered measurement it says what the first call
    does, and for a requested backend that cannot run the call, why.
    ``batch``: the caller's batch size, for a measurement (default 1 or SMALL_BATCH)."""
    requested = effective_request(requested)
    key = (problem, pass_name, requested)
    known = _CHOICES.get(key)
    if known is not None:
        return known
    choice = _choose(problem, pass_name, requested, measure, batch)
    if choice.final:
        with _LOCK:
            _CHOICES[key] = choice
    return choice


def _choose(problem: Problem, pass_name: str, requested: str, measure: bool, batch: Optional[int]) -> PassChoice:
    if problem.device_type == "cuda" and measure:
        _extension.warn_once_if_missing()  # a GPU without the extension: say why, once
    reasons: Dict[str, Optional[str]] = {}
    for impl in catalog.for_pass(pass_name):
        why = impl.rejection(problem, pass_name)
        if why is None and requested == "auto" and problem.device_type not in impl.auto_devices:
            why = f"available, but \"auto\" does not pick it for {problem.device_type} tensors"
        elif why is None and requested == "auto" and impl.auto_rejection is not None:
            why = impl.auto_rejection(problem)
        elif why is None and requested not in ("auto", impl.backend):
            why = f"available; backend {requested!r} was requested"
        reasons[impl.name] = why
    if requested != "auto":
        return _requested(problem, pass_name, requested, reasons, explaining=not measure)
    names = [name for name, why in reasons.items() if why is None]
    if not names:  # cannot happen while "torch" runs everywhere; say so rather than guess
        raise RuntimeError(f"backend: no implementation can run {pass_name} of {problem}")

    def choice(name: str, how: str, measurement: Optional[Measurement] = None, final: bool = True) -> PassChoice:
        def unchosen(other: str) -> str:
            if measurement is not None and other in measurement.milliseconds:
                return "available; slower in the measurement"
            return "available; not chosen"

        rejected = tuple((other, why or unchosen(other)) for other, why in reasons.items() if other != name)
        return PassChoice(pass_name, catalog.by_name(name, pass_name), how, rejected, measurement, final)

    if len(names) == 1:
        return choice(names[0], "the only candidate")
    if problem.device_type == "cpu":
        # where fft can win, its own rule or a measurement against it decides (fft_plan.py)
        if "fft" in names:
            rule = fft_plan.cpu_rule(problem, pass_name, names)
        else:
            rule = _cpu_rule(problem, pass_name, names)
        if rule is not None:
            return choice(rule[0], f"by rule: {rule[1]}")
        names = fft_plan.cpu_candidates(problem, pass_name, names, ONEDNN_NCHW_MAX_SIDE)
        reasons.update((name, "PyTorch's NCHW path is a naive loop for this kernel") for name in reasons
                       if reasons[name] is None and name not in names)
    remembered = _MEASURED.get(problem.kind(pass_name))
    if remembered is not None and remembered.chosen in names:
        return choice(remembered.chosen, str(remembered), remembered)
    fallback = _cpu_fallback(problem, names) if problem.device_type == "cpu" else names[0]
    blocked = _measuring_blocked(problem)
    if blocked is not None:
        return choice(fallback, f"by priority: {blocked}", final=blocked in _LASTING_BLOCKS)
    if not measure:
        return choice(fallback, f"by priority until the first {pass_name} call of this kind times "
                                f"{', '.join(names)}", final=False)
    measurement = _measure(problem, pass_name, names, batch)
    if measurement is None:
        return choice(fallback, "by priority: every candidate failed when measured")
    return choice(measurement.chosen, str(measurement), measurement)


def _requested(problem: Problem, pass_name: str, requested: str, reasons: Dict[str, Optional[str]],
               explaining: bool) -> PassChoice:
    # The backend's own entry (its default choice) first, then its other entries (CUDA algos).
    entries = [impl for impl in catalog.for_pass(pass_name) if impl.backend == requested]
    entries.sort(key=lambda impl: impl.name != requested)
    for impl in entries:
        if reasons[impl.name] is None:
            rejected = tuple((name, why or "available; not chosen") for name, why in reasons.items()
                             if name != impl.name)
            return PassChoice(pass_name, impl, "requested", rejected)
    why = reasons[entries[0].name]
    if explaining:  # explain reports it; a call raises
        rejected = tuple((name, why) for name, why in reasons.items() if name != entries[0].name)
        return PassChoice(pass_name, entries[0], f"requested, but cannot run: {why}", rejected, final=False)
    raise RuntimeError(f"backend: {requested!r} cannot run this call: {why}")


# --- measuring -----------------------------------------------------------------------------------

def _workload(problem: Problem, batch: int):
    """Random tensors of the problem's shape, layout and dtype for timing each pass."""
    fmt = torch.channels_last if problem.layout == CHANNELS_LAST else torch.contiguous_format
    make = dict(dtype=problem.dtype, device=problem.device)
    x = torch.randn(batch, problem.channels, problem.height, problem.width, **make).contiguous(memory_format=fmt)
    weight = torch.randn(problem.channels, 1, problem.kh, problem.kw, **make)
    bias = torch.randn(problem.channels, **make)
    grad_out = torch.randn(batch, problem.channels, *problem.output_hw(), **make).contiguous(memory_format=fmt)
    return x, weight, bias, grad_out


def _pass_runner(problem: Problem, pass_name: str, impl: Implementation, tensors) -> Callable[[], object]:
    x, weight, bias, grad_out = tensors
    runner, ph, pw = impl.runner, problem.ph, problem.pw
    if pass_name == "fwd":
        return lambda: runner.fwd(x, weight, bias, ph, pw)
    if pass_name == "bwd_input":
        return lambda: runner.bwd_input(grad_out, weight, ph, pw)
    return lambda: runner.bwd_weight(grad_out, x, problem.kh, problem.kw, ph, pw)


def _time_cuda(run: Callable[[], object]) -> float:
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
    while live and rounds < CPU_MAX_ROUNDS and (rounds < CPU_MIN_ROUNDS or spent < CPU_BUDGET_MS):
        for name, run in list(live.items()):
            start = time.perf_counter()
            run()
            elapsed = (time.perf_counter() - start) * 1e3
            spent += elapsed
            best[name] = min(best.get(name, math.inf), elapsed)
        leader = min(best.values())
        for name in [n for n in live if best[n] > GIVE_UP_FACTOR * leader]:
            del live[name]  # a clear loser (PyTorch's naive loop can take seconds) runs no more
        rounds += 1
    return best


def _measure(problem: Problem, pass_name: str, names: List[str], batch: Optional[int]) -> Optional[Measurement]:
    key = problem.kind(pass_name)
    with _LOCK:
        known = _MEASURED.get(key)
        if known is not None:
            return known
        if not batch:
            batch = 1 if problem.small_batch else SMALL_BATCH
        with torch.no_grad():
            tensors = _workload(problem, batch)
            runs = {name: _pass_runner(problem, pass_name, catalog.by_name(name, pass_name), tensors)
                    for name in names}
            times = _time_all(problem, runs)
        if not times:
            return None
        measurement = Measurement(_fastest(times), times)
        _MEASURED[key] = measurement
        return measurement


def _time_all(problem: Problem, runs: Dict[str, Callable[[], object]]) -> Dict[str, float]:
    if problem.device_type != "cuda":
        return _time_cpu(runs)
    times = {}
    for name, run in runs.items():
        try:
            times[name] = _time_cuda(run)
        except Exception:  # noqa: BLE001 - a candidate that fails here (a launch or compile error) is
            continue       # simply not chosen; a direct call reports it
    return times


def _fastest(times: Dict[str, float]) -> str:
    best = min(times, key=times.get)
    if "torch" in times and times["torch"] <= times[best] * NATIVE_MARGIN:
        return "torch"
    return best


_STEPS: Dict[Tuple, Measurement] = {}
STEP = "fwd+bwd"


def _native_step_choice(problem: Problem, choices: Dict[str, PassChoice], measurement: Measurement) -> Dict[str, PassChoice]:
    """The choices with PyTorch's own path for every pass, as a whole-step measurement decided."""
    native = catalog.by_name("torch")
    how = f"{measurement} (a whole {STEP} step: PyTorch's own fwd and backward against the per-pass plan)"
    replaced = {}
    for name, choice in choices.items():
        if choice.implementation is native:
            replaced[name] = choice
            continue
        rejected = tuple((other, "available; slower in the step measurement" if other == choice.implementation.name
                          else why) for other, why in choice.rejected if other != "torch")
        rejected += ((choice.implementation.name, "available; slower in the step measurement"),)
        replaced[name] = PassChoice(name, native, how, rejected, measurement)
    return replaced


def _step_measurable(problem: Problem, choices: Dict[str, PassChoice]) -> bool:
    """Whether the per-pass plan was measured and is not PyTorch's own path throughout: then a whole
    step checks it, since the cost of the autograd function and of PyTorch's backward split in two
    does not show in per-pass times."""
    native = catalog.by_name("torch")
    if problem.device_type not in native.auto_devices or any(native.rejection(problem, p) for p in PASSES):
        return False
    if problem.device_type == "cpu" and all(fft_plan.torch_is_naive_loop(problem, p, ONEDNN_NCHW_MAX_SIDE)
                                            for p in PASSES):
        return False  # PyTorch's own step is its naive loop throughout: seconds, and never faster
    mixed = any(c.implementation is not native for c in choices.values())
    measured = all(c.measurement is not None or c.implementation is native for c in choices.values())
    return mixed and measured


def plan_training(problem: Problem, requested: str, batch: Optional[int],
                  time_steps: Optional[Callable[[Dict[str, PassChoice]], Dict[str, float]]] = None
                  ) -> Dict[str, PassChoice]:
    """The three passes of a call that autograd records. With "auto", where the per-pass plan was
    measured and is not PyTorch's own path throughout, a whole step of each is timed once per kind
    (``time_steps(choices)`` gives {"torch": ms, "planned": ms}) and PyTorch's own path is kept unless the
    plan is faster by NATIVE_MARGIN."""
    choices = {name: plan_pass(problem, name, requested, True, batch) for name in PASSES}
    if effective_request(requested) != "auto" or not _step_measurable(problem, choices):
        return choices
    key = problem.kind(STEP)
    known = _STEPS.get(key)
    if known is None:
        if time_steps is None or _measuring_blocked(problem) is not None:
            return choices
        with _LOCK:
            known = _STEPS.get(key)
            if known is None:
                times = time_steps(choices)
                known = Measurement(_fastest(times) if times else "planned", times)
                _STEPS[key] = known
    return _native_step_choice(problem, choices, known) if known.chosen == "torch" else choices


def time_steps(problem: Problem, batch: Optional[int], native_step, planned_step) -> Dict[str, float]:
    """{"torch": ms, "planned": ms} for one fwd+bwd each on tensors of the problem's shape."""
    if not batch:
        batch = 1 if problem.small_batch else SMALL_BATCH
    x, weight, bias, grad_out = _workload(problem, batch)
    x, weight, bias = (t.requires_grad_() for t in (x, weight, bias))
    steps = {name: (lambda step=step: step(x, weight, bias).backward(grad_out))
             for name, step in (("torch", native_step), ("planned", planned_step))}
    # The caller may be inside activation checkpointing, whose saved-tensor hooks would count the
    # tensors these steps save as the layer's own: identity hooks, innermost, keep them apart.
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        return _time_all(problem, steps)


def plan(problem: Problem, requested: str = "auto", measure: bool = False) -> Plan:
    """Every pass of ``problem`` (with a remembered whole-step measurement applied)."""
    choices = {name: plan_pass(problem, name, requested, measure) for name in PASSES}
    step = _STEPS.get(problem.kind(STEP))
    if step is not None and step.chosen == "torch" and effective_request(requested) == "auto":
        choices = _native_step_choice(problem, choices, step)
    return Plan(problem, effective_request(requested), choices)


__all__ = ["Problem", "Plan", "PassChoice", "Measurement", "plan", "plan_pass", "reset", "settings",
           "SMALL_BATCH", "BACKEND_ENV", "AUTOTUNE_ENV"]
