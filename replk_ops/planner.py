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
import os
import threading
from typing import Callable, Dict, List, Optional, Tuple

import torch

from . import catalog, cpu_rules, measure, rules3d
from ._checks import env_switch
from ._layout import CHANNELS_LAST, NCHW
from .cache import measurements
from .catalog import PASSES, Implementation, check_backend_name
from .problem import SMALL_BATCH, Problem
from .backends import cpp as cpp_backend, cuda as cuda_backend

BACKEND_ENV = "REPLK_OPS_BACKEND"
AUTOTUNE_ENV = "REPLK_OPS_AUTOTUNE"
# PyTorch's own path is the floor of host overhead (no autograd function, no layout copies, and
# for training PyTorch's own backward in C++); another implementation replaces it only when it
# measures this much faster.
NATIVE_MARGIN = 1.10


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
        lines = [f"{PASS_WORDS[self.pass_name]} ({self.pass_name}): {self.implementation.name} ({self.how})"]
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
        batch = (f"batches under {SMALL_BATCH}" if p.small_batch else f"batches of {SMALL_BATCH} or more")
        dtype = catalog.DTYPE_NAMES[p.dtype]
        layout = (LAYOUT_WORDS_3D if p.rank == 3 else LAYOUT_WORDS)[p.layout]
        head = (f"replk_ops: {p.channels} channels of {p.map_words()} ({p.device}, {dtype}, "
                f"{layout}), {p.kernel_words()}, padding {p.padding_words()}, planned for {batch}"
                f" (small batches are planned apart); the forward runs backend {self.backend!r}"
                f" (you asked for {self.requested!r})")
        lines = [head] + [f"  {choice}".replace("\n", "\n  ") for choice in self.choices.values()]
        if cuda_backend.note():  # the extension's build: its compiler, what its check in a child process found
            lines.append(f"  note: {cuda_backend.note()}")
        if p.device_type == "cpu":
            lines.append(f"  note: {cpp_backend.note()}")
        return "\n".join(lines)


LAYOUT_WORDS = {NCHW: "NCHW", CHANNELS_LAST: "channels_last"}
LAYOUT_WORDS_3D = {NCHW: "NCDHW", CHANNELS_LAST: "channels_last_3d"}
PASS_WORDS = {"fwd": "forward", "bwd_input": "input gradient", "bwd_weight": "weight gradient"}


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
    requested = check_backend_name(requested)
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


def plan_pass(problem: Problem, pass_name: str, requested: str = "auto", may_measure: bool = True,
              batch: Optional[int] = None) -> PassChoice:
    """The implementation for ``pass_name`` of ``problem``. ``may_measure=False`` (``explain``) never
    times anything, and never raises: without a remembered measurement it says what the first call
    does, and for a requested backend that cannot run the call, why.
    ``batch``: the caller's batch size, for a measurement (default 1 or SMALL_BATCH)."""
    requested = effective_request(requested)
    key = (problem, pass_name, requested)
    known = _CHOICES.get(key)
    if known is not None:
        return known
    choice = _choose(problem, pass_name, requested, may_measure, batch)
    if choice.final:
        with _LOCK:
            _CHOICES[key] = choice
    return choice


def _cpu_rules(problem):
    """The CPU rules for the problem's rank: ``cpu_rules`` (2-D) or ``rules3d``."""
    return rules3d if problem.rank == 3 else cpu_rules


def _choose(problem: Problem, pass_name: str, requested: str, may_measure: bool, batch: Optional[int]) -> PassChoice:
    if problem.device_type == "cuda" and may_measure:
        cuda_backend.warn_once_if_missing()  # a GPU without the extension: say why, once
    reasons: Dict[str, Optional[str]] = {}
    for impl in catalog.for_pass(pass_name):
        why = impl.rejection(problem, pass_name)
        if why is None and requested == "auto":
            why = impl.auto_rejection(problem)
        if why is None and requested not in ("auto", impl.backend):
            why = f"available; backend {requested!r} was requested"
        reasons[impl.name] = why
    if requested != "auto":
        return _requested(problem, pass_name, requested, reasons, explaining=not may_measure)
    names = [name for name, why in reasons.items() if why is None]
    if not names:  # cannot happen while "torch" runs everywhere; say so rather than guess
        raise RuntimeError(f"backend: no implementation can run {pass_name} of {problem}")

    def choice(name: str, how: str, measurement: Optional[Measurement] = None, final: bool = True) -> PassChoice:
        def unchosen(other: str) -> str:
            if measurement is not None and other in measurement.milliseconds:
                return "available; slower in the measurement"
            if how.startswith("by rule"):
                return "available; the rule above decides for this call"
            return "available; not chosen"

        rejected = tuple((other, why or unchosen(other)) for other, why in reasons.items() if other != name)
        return PassChoice(pass_name, catalog.by_name(name, pass_name), how, rejected, measurement, final)

    if len(names) == 1:
        return choice(names[0], "the only candidate")
    if problem.device_type == "cpu":
        rules = _cpu_rules(problem)
        rule = rules.rule(problem, pass_name, names)
        if rule is not None:
            return choice(rule[0], f"by rule: {rule[1]}")
        names = rules.candidates(problem, pass_name, names)
        reasons.update((name, rules.not_timed(problem, name)) for name in reasons if reasons[name] is None and name not in names)
    timed = cuda_backend.without_repeats(  # each kernel timed once
        problem, pass_name, names, lambda name: catalog.by_name(name, pass_name).rejection(problem, pass_name))
    reasons.update((name, cuda_backend.REPEATS_AN_ALGO) for name in names if name not in timed)
    remembered = _MEASURED.get(problem.kind(pass_name))
    if remembered is not None and remembered.chosen in names:
        return choice(remembered.chosen, str(remembered), remembered)
    fallback = _cpu_rules(problem).fallback(problem, names) if problem.device_type == "cpu" else names[0]
    blocked = _measuring_blocked(problem)
    if blocked is not None:
        return choice(fallback, f"by priority: {blocked}", final=blocked in _LASTING_BLOCKS)
    if not may_measure:
        return choice(fallback, f"by priority until the first {pass_name} call of this kind times "
                                f"{', '.join(timed)}", final=False)
    measurement = _measure(problem, pass_name, timed, batch)
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

def _measure(problem: Problem, pass_name: str, names: List[str], batch: Optional[int]) -> Optional[Measurement]:
    key = problem.kind(pass_name)
    with _LOCK:
        known = _MEASURED.get(key)
        if known is not None:
            return known
        saved = measurements.recall(problem.device, key, names)  # an earlier process's, on CUDA
        if saved is not None:
            _MEASURED[key] = Measurement(*saved)
            return _MEASURED[key]
        if not batch:
            batch = 1 if problem.small_batch else SMALL_BATCH
        with torch.no_grad():
            tensors = measure.workload(problem, batch)
            runs = {name: measure.pass_runner(problem, pass_name, catalog.by_name(name, pass_name), tensors)
                    for name in names}
            times = measure.time_all(problem, runs)
        if not times:
            return None
        measurement = Measurement(_fastest(times), times)
        measurements.keep(problem.device, key, names, measurement.chosen, times)
        _MEASURED[key] = measurement
        return measurement


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
    if problem.device_type == "cpu" and all(_cpu_rules(problem).torch_is_naive_loop(problem, p) for p in PASSES):
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


def plan(problem: Problem, requested: str = "auto", may_measure: bool = False) -> Plan:
    """Every pass of ``problem`` (with a remembered whole-step measurement applied)."""
    choices = {name: plan_pass(problem, name, requested, may_measure) for name in PASSES}
    step = _STEPS.get(problem.kind(STEP))
    if step is not None and step.chosen == "torch" and effective_request(requested) == "auto":
        choices = _native_step_choice(problem, choices, step)
    return Plan(problem, effective_request(requested), choices)


__all__ = ["Problem", "Plan", "PassChoice", "Measurement", "plan", "plan_pass", "reset", "settings",
           "SMALL_BATCH", "BACKEND_ENV", "AUTOTUNE_ENV"]
