"""The 3-D layer bench (``--preset uxnet3d|repuxnet|mednext``): ``replk_ops.dwconv3d`` ("auto")
against ``nn.Conv3d``'s own call in the same layout, interleaved: inference (forward under
no_grad) and a training fwd+bwd; the error of every pass against a float64 reference; the peak
memory of one fwd+bwd of each (Linux, run with MALLOC_MMAP_THRESHOLD_=65536: the process's peak
resident set, reset before each)."""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

from .. import dwconv3d
from .console import say
from .shapes3d import Shape3d
from .timing import cpu_clock, time_cuda, time_interleaved

LAYOUTS = {"ncdhw": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}
CHECK_CHANNELS = 2  # the float64 reference runs on the first channels only


@dataclasses.dataclass
class Row3d:
    shape: str
    label: str
    layout: str
    torch_fwd_ms: float
    replk_fwd_ms: float
    torch_step_ms: float
    replk_step_ms: float
    error: float             # max over the passes, relative to each result's largest magnitude
    torch_peak_mb: Optional[float]
    replk_peak_mb: Optional[float]
    samples: int

    @property
    def fwd_speedup(self) -> float:
        return self.torch_fwd_ms / self.replk_fwd_ms

    @property
    def step_speedup(self) -> float:
        return self.torch_step_ms / self.replk_step_ms


def _full_conv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The full linear convolution of a (..., D, H, W) with b over the last three axes, by float64 FFTs
    of the full size (no wrap-around at all: independent of the fft route's size choice and crop)."""
    s = [m + n - 1 for m, n in zip(a.shape[-3:], b.shape[-3:])]
    return torch.fft.irfftn(torch.fft.rfftn(a, s=s, dim=(-3, -2, -1)) * torch.fft.rfftn(b, s=s, dim=(-3, -2, -1)),
                            s=s, dim=(-3, -2, -1))


def reference64(x, w, b, dy, padding):
    """(y, dx, dw, db) in float64 of the depthwise cross-correlation, from full linear convolutions."""
    x, w, b, dy = (t.detach().double().contiguous() for t in (x, w, b, dy))
    k = w.shape[2:]
    pd, ph, pw = padding
    xpad = F.pad(x, (pw, pw, ph, ph, pd, pd))
    out = dy.shape[2:]
    wk = w[:, 0].unsqueeze(0)  # (1, C, kd, kh, kw)
    y = _full_conv(xpad, wk.flip(-3, -2, -1))[..., k[0] - 1:k[0] - 1 + out[0], k[1] - 1:k[1] - 1 + out[1],
                                                k[2] - 1:k[2] - 1 + out[2]] + b.view(1, -1, 1, 1, 1)
    dxpad = _full_conv(dy, wk)
    dx = dxpad[..., pd:pd + x.shape[2], ph:ph + x.shape[3], pw:pw + x.shape[4]]
    corr = _full_conv(xpad, dy.flip(-3, -2, -1))
    dw = corr[..., out[0] - 1:out[0] - 1 + k[0], out[1] - 1:out[1] - 1 + k[1], out[2] - 1:out[2] - 1 + k[2]]
    return y, dx, dw.sum(0).unsqueeze(1), dy.sum(dim=(0, 2, 3, 4))


def _error(got, want) -> float:
    return ((got.detach().double() - want).abs().max() / (want.abs().max() or 1.0)).item()


def check_error(shape: Shape3d, memory_format) -> float:
    """The largest error of dwconv3d's passes against float64, on the first CHECK_CHANNELS channels."""
    c = min(CHECK_CHANNELS, shape.c)
    x, w, b, dy = _tensors(Shape3d(shape.n, c, shape.size, shape.k), "cpu", memory_format)
    x.requires_grad_(), w.requires_grad_(), b.requires_grad_()
    y = dwconv3d(x, w, b)
    y.backward(dy)
    ref = reference64(x, w, b, dy, shape.padding)
    return max(_error(got, want) for got, want in zip((y, x.grad, w.grad, b.grad), ref))


def _tensors(shape: Shape3d, device, memory_format):
    gen = torch.Generator().manual_seed(0)
    dims = (shape.n, shape.c) + (shape.size,) * 3
    x = torch.randn(dims, generator=gen).to(device).contiguous(memory_format=memory_format)
    w = (torch.randn((shape.c, 1) + (shape.k,) * 3, generator=gen) / shape.k ** 1.5).to(device)
    b = torch.randn(shape.c, generator=gen).to(device)
    dy = torch.randn(dims, generator=gen).to(device).contiguous(memory_format=memory_format)
    return x, w, b, dy


# With this glibc setting every allocation of 64 KiB or more is its own mapping, returned on free,
# so the resident set follows the live tensors; without it freed memory stays resident and is reused.
MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"


def _peak_rss_mb(step: Callable[[], None]) -> Optional[float]:
    """The growth of the process's peak resident set over one call of ``step``: Linux, and only with
    MALLOC_MMAP_THRESHOLD_ set (the peak is reset through /proc/self/clear_refs); else None."""
    if not os.environ.get(MMAP_ENV):
        return None
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

        def hwm() -> float:
            with open("/proc/self/status") as f:
                return next(float(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))

        def rss() -> float:
            with open("/proc/self/status") as f:
                return next(float(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))
        before = rss()
        step()
        return hwm() - before
    except (OSError, StopIteration):
        return None


def run_shape(shape: Shape3d, layout: str, device: torch.device, budget_s: float) -> Row3d:
    fmt = LAYOUTS[layout]
    x, w, b, dy = _tensors(shape, device, fmt)
    padding = shape.padding
    xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, b))

    def torch_fwd():
        with torch.no_grad():
            F.conv3d(x, w, b, 1, padding, 1, shape.c)

    def replk_fwd():
        with torch.no_grad():
            dwconv3d(x, w, b)

    def torch_step():
        F.conv3d(xg, wg, bg, 1, padding, 1, shape.c).backward(dy)

    def replk_step():
        dwconv3d(xg, wg, bg).backward(dy)

    fwd = _time({"torch": torch_fwd, "replk_ops": replk_fwd}, device, budget_s)
    # PyTorch's CPU backward can take minutes a call: the step timing stops at the wall cap
    step = _time({"torch": torch_step, "replk_ops": replk_step}, device, budget_s)
    peaks = {name: (_peak_rss_mb(fn) if device.type == "cpu" else None)
             for name, fn in (("torch", torch_step), ("replk_ops", replk_step))}
    # after the timing: the planner measures on the first call of a kind, which should be this shape
    error = check_error(shape, fmt) if device.type == "cpu" else math.nan
    return Row3d(str(shape), shape.label, layout, fwd["torch"].median_ms, fwd["replk_ops"].median_ms,
                 step["torch"].median_ms, step["replk_ops"].median_ms, error, peaks["torch"], peaks["replk_ops"],
                 min(t.samples for t in list(fwd.values()) + list(step.values())))


def _time(calls: Dict[str, Callable], device, budget_s: float):
    if device.type == "cuda":
        return {name: time_cuda(call, rep_ms=budget_s * 1e3) for name, call in calls.items()}
    return time_interleaved(calls, budget_s, cpu_clock(torch.get_num_threads()), min_samples=3)


def run(shapes: List[Shape3d], layouts: List[str], device: torch.device, budget_s: float) -> List[Row3d]:
    rows = []
    for shape in shapes:
        for layout in layouts:
            say(f"{shape} {layout} ...")
            rows.append(run_shape(shape, layout, device, budget_s))
            print_rows(rows[-1:], header=len(rows) == 1)
    return rows


def print_rows(rows: List[Row3d], header: bool = True) -> None:
    if header:
        print(f"{'shape':<22} {'layout':<17} {'nn.Conv3d fwd':>13} {'replk fwd':>10} {'x':>6} "
              f"{'nn.Conv3d f+b':>14} {'replk f+b':>10} {'x':>7} {'error':>8} {'peak MB torch/replk':>20}")
    for r in rows:
        peak = (f"{r.torch_peak_mb:.0f}/{r.replk_peak_mb:.0f}" if r.torch_peak_mb is not None
                and r.replk_peak_mb is not None else "n/a")
        print(f"{r.shape:<22} {r.layout:<17} {r.torch_fwd_ms:11.1f}ms {r.replk_fwd_ms:8.1f}ms {r.fwd_speedup:5.2f}x "
              f"{r.torch_step_ms:12.1f}ms {r.replk_step_ms:8.1f}ms {r.step_speedup:6.1f}x {r.error:8.1e} {peak:>20}",
              flush=True)


def as_json(rows: List[Row3d]) -> List[dict]:
    return [dict(dataclasses.asdict(r), fwd_speedup=r.fwd_speedup, step_speedup=r.step_speedup) for r in rows]


__all__ = ["Row3d", "run", "run_shape", "print_rows", "as_json", "reference64", "check_error", "LAYOUTS"]
