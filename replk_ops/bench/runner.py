"""Runs the comparison: for each shape and dtype, check every candidate against a float64
reference, then time the ones that are right, pass by pass, all candidates of a pass interleaved
round by round on CPU. A wrong candidate is reported, never timed."""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from .._checks import output_size, span
from ..backends.base import NoTF32
from .candidates import Candidate
from .hardware import Peaks, compute_peak
from .shapes import Shape
from .timing import Timing, cpu_clock, time_cuda, time_interleaved

# Max error relative to the reference's largest magnitude. fp32 must be fp32-exact (TF32 fails).
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 4e-2}
CHECK_CHANNELS = 8
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}  # the reference check runs on the first channels only, in float64


@dataclasses.dataclass
class Row:
    shape: str
    label: str
    dtype: str
    pass_name: str
    candidate: str
    status: str  # "ok", "wrong" or "error"
    detail: str = ""
    median_ms: Optional[float] = None
    p20_ms: Optional[float] = None
    p80_ms: Optional[float] = None
    samples: Optional[int] = None  # measurements behind median/p20/p80 (below timing.MIN_SAMPLES: no verdict)
    tflops_nominal: Optional[float] = None
    tflops_valid: Optional[float] = None
    pct_of_bound: Optional[float] = None  # None without a datasheet bound (CPUs, GPUs not in the table)
    speedup: Dict[str, float] = dataclasses.field(default_factory=dict)


def _valid_taps_1d(size: int, k: int, pad: int, d: int = 1) -> int:
    out = size + 2 * pad - span(k, d) + 1
    return sum(sum(0 <= o + i * d - pad < size for i in range(k)) for o in range(out))


def _dilation_arg(dil) -> tuple:
    """A candidate's passes take the dilation as a sixth argument only when it is not 1 (so that
    candidates written without it keep working for undilated shapes)."""
    return () if tuple(dil) == (1, 1) else (tuple(dil),)


def flops(shape: Shape, pass_name: str, valid: bool) -> float:
    ph, pw = shape.padding
    d = shape.dilation
    if valid:
        taps = _valid_taps_1d(shape.h, shape.kh, ph, d) * _valid_taps_1d(shape.w, shape.kw, pw, d)
    else:
        ho, wo = output_size(shape.h, shape.w, shape.kh, shape.kw, ph, pw, (d, d))
        taps = ho * wo * shape.kh * shape.kw
    per_pass = 2.0 * shape.n * shape.c * taps * shape.layers
    return per_pass * (3 if pass_name == "fwd+bwd" else 1)


def min_bytes(shape: Shape, pass_name: str, dtype: torch.dtype) -> float:
    elem = torch.tensor([], dtype=dtype).element_size()
    act = shape.n * shape.c * shape.h * shape.w * elem
    per_pass = {"fwd": 2 * act, "bwd_input": 2 * act, "bwd_weight": 2 * act, "fwd+bwd": 6 * act}[pass_name]
    return per_pass * shape.layers


def _inputs(shape: Shape, dtype, device, channels_last: bool):
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(shape.n, shape.c, shape.h, shape.w, generator=gen).to(device=device, dtype=dtype)
    w = (torch.randn(shape.c, 1, shape.kh, shape.kw, generator=gen) / (shape.kh * shape.kw) ** 0.5).to(device, dtype)
    b = torch.randn(shape.c, generator=gen).to(device, dtype)
    dy = torch.randn(shape.n, shape.c, shape.h, shape.w, generator=gen).to(device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        dy = dy.contiguous(memory_format=torch.channels_last)
    return x, w, b, dy


def _reference(x, w, b, dy, pad, dil=(1, 1)):
    """float64 fwd / bwd_input (image 0) and bwd_weight (all images) on the checked channels."""
    cs = slice(0, min(CHECK_CHANNELS, x.shape[1]))
    x64 = x[:, cs].double().requires_grad_()
    w64 = w[cs].double().requires_grad_()
    b64 = b[cs].double().requires_grad_()
    y = F.conv2d(x64, w64, b64, padding=pad, dilation=dil, groups=x64.shape[1])
    y.backward(dy[:, cs].double())
    return {"fwd": y[:1].detach(), "bwd_input": x64.grad[:1], "bwd_weight": (w64.grad, b64.grad)}


def _error(got, want) -> float:
    got = got.detach().double()
    scale = want.abs().max().item() or 1.0
    return (got - want).abs().max().item() / scale


def check(candidate: Candidate, tensors, pad, reference, dil=(1, 1)) -> Dict[str, str]:
    """pass -> "" if right, else what is wrong. fwd+bwd is right when all three passes are."""
    x, w, b, dy = tensors
    cs = slice(0, min(CHECK_CHANNELS, x.shape[1]))
    tol = TOLERANCE[x.dtype]
    problems = {}
    for pass_name in ("fwd", "bwd_input", "bwd_weight"):
        try:
            out = candidate.passes[pass_name](x, w, b, dy, pad, *_dilation_arg(dil))
            if pass_name == "bwd_weight":
                errs = [_error(out[0][cs], reference["bwd_weight"][0]), _error(out[1][cs], reference["bwd_weight"][1])]
            else:
                errs = [_error(out[:1, cs], reference[pass_name])]
            err = max(errs)
            problems[pass_name] = "" if err <= tol else f"max relative error {err:.2e} > {tol:.0e}"
        except Exception as exc:  # reported, never fatal: one broken backend must not hide the others
            problems[pass_name] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    problems["fwd+bwd"] = next((p for p in problems.values() if p), "")
    return problems


def run(
    shapes: Sequence[Shape],
    dtypes: Sequence[torch.dtype],
    passes: Sequence[str],
    candidates: Sequence[Candidate],
    device: torch.device,
    peaks: Peaks,
    budget_s: float = 0.2,
    progress: Optional[Callable[[str], None]] = None,
) -> List[Row]:
    rows: List[Row] = []
    # fp32 rows are checked to fp32 accuracy; cuDNN's default TF32 convolutions would fail that
    # check and never be timed, so the baselines run in true fp32 here
    with NoTF32():
        for shape in shapes:
            for dtype in dtypes:
                rows += _run_one(shape, dtype, passes, candidates, device, peaks, budget_s, progress)
    return rows


def _run_one(shape, dtype, passes, candidates, device, peaks, budget_s, progress) -> List[Row]:
    pad, dil = shape.padding, (shape.dilation, shape.dilation)
    base = _inputs(shape, dtype, device, channels_last=False)
    reference = _reference(*base, pad, dil)
    tensors = {c.name: _inputs(shape, dtype, device, c.channels_last) for c in candidates}
    problems = {c.name: check(c, tensors[c.name], pad, reference, dil) for c in candidates}
    rows = []
    for pass_name in passes:
        calls, by_name = {}, {}
        for candidate in candidates:
            row = Row(str(shape), shape.label, DTYPE_NAMES[dtype], pass_name, candidate.name, "ok")
            rows.append(row)
            problem = problems[candidate.name][pass_name]
            if problem:
                row.status = "error" if problem.startswith("error") else "wrong"
                row.detail = problem
                continue
            fn, args = candidate.passes[pass_name], tensors[candidate.name] + (pad,) + _dilation_arg(dil)

            def call(fn=fn, args=args):
                for _ in range(shape.layers):
                    fn(*args)

            calls[candidate.name], by_name[candidate.name] = call, row
        if progress:
            progress(f"{shape} {DTYPE_NAMES[dtype]} {pass_name}")
        for name, timing in _time(calls, device, budget_s).items():
            _fill(by_name[name], timing, shape, pass_name, dtype, peaks)
    _add_speedups(rows, [c.name for c in candidates if c.is_baseline])
    return rows


def _time(calls: Dict[str, Callable], device, budget_s: float) -> Dict[str, Timing]:
    """CUDA: each on its own (the GPU is not shared the way CPU cores are); CPU: all interleaved."""
    if device.type == "cuda":
        return {name: time_cuda(call, rep_ms=budget_s * 1e3) for name, call in calls.items()}
    return time_interleaved(calls, budget_s, cpu_clock(torch.get_num_threads())) if calls else {}


def _fill(row: Row, timing: Timing, shape: Shape, pass_name: str, dtype, peaks: Peaks) -> None:
    row.median_ms, row.p20_ms, row.p80_ms, row.samples = timing
    seconds = row.median_ms / 1e3
    row.tflops_nominal = flops(shape, pass_name, valid=False) / seconds / 1e12
    row.tflops_valid = flops(shape, pass_name, valid=True) / seconds / 1e12
    if peaks.is_bound:
        bound_s = max(flops(shape, pass_name, valid=True) / (compute_peak(peaks, dtype) * 1e12),
                      min_bytes(shape, pass_name, dtype) / (peaks.bandwidth_tbs * 1e12))
        row.pct_of_bound = 100.0 * bound_s / seconds


def _add_speedups(rows: List[Row], baselines: List[str]) -> None:
    for pass_name in {r.pass_name for r in rows}:
        group = [r for r in rows if r.pass_name == pass_name]
        for baseline in baselines:
            ref = next((r for r in group if r.candidate == baseline and r.median_ms), None)
            if ref is None:
                continue
            for r in group:
                if r.median_ms:
                    r.speedup[baseline] = ref.median_ms / r.median_ms
