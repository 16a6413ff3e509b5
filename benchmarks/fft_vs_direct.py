"""The fft backend against the direct route (backend "direct") on CPU.

    python benchmarks/fft_vs_direct.py [--json out.json] [--skip-crossover] [--skip-memory]

One process, one torch thread, thread CPU time, the two variants interleaved round by round (the
order alternating), the ratio per round (above 1: fft is faster), min and median over rounds:

- fwd+bwd (LargeKernelDWConv2d, training) at the target shapes, NCHW and channels_last;
- eval-mode inference (torch.no_grad, the kernel's spectrum cached);
- fp32 error of fft's output and both gradients against float64, relative to the largest magnitude;
- what ``backend="auto"`` picks there (after its first-call measurements);
- the crossover: each pass of fft (and its shared backward) against the fastest direct route
  ("torch", "direct") for square kernels 7 to 31 at 1x128x56x56 (``backends/fft/thresholds.py``);
- peak memory of one fwd+bwd: the peak resident set (reset before the step) over the resident set
  before it, in a fresh process (Linux).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys

import torch
import torch.nn.functional as F

import replk_ops
from replk_ops.bench.timing import interleaved_samples
from replk_ops.bench.shapes import Shape, preset
from replk_ops.catalog import by_name

ROUNDS = 7
ERROR_CHANNELS = 8


def interleaved(fns, rounds=ROUNDS):
    """{name: [seconds per call, one per round]}: the bench's interleaved sampling, exactly
    ``rounds`` rounds (no wall-clock cap: the direct route at 61x61 takes seconds a call)."""
    samples = interleaved_samples(fns, budget_s=0.0, wall_cap_s=math.inf, min_samples=rounds)
    return {name: [ms / 1e3 for ms in values] for name, values in samples.items()}


def ratio_stats(times, slow="direct", fast="fft"):
    ratios = [a / b for a, b in zip(times[slow], times[fast])]
    return min(ratios), statistics.median(ratios), statistics.median(times[slow]), statistics.median(times[fast])


def layer(shape, backend, fmt):
    conv = replk_ops.LargeKernelDWConv2d(shape.c, (shape.kh, shape.kw), backend=backend)
    x = torch.randn(shape.n, shape.c, shape.h, shape.w).contiguous(memory_format=fmt)
    return conv, x


def training_step(module, x, grad_out):
    xg = x.detach().requires_grad_()

    def run():
        module(xg).backward(grad_out)
        module.zero_grad(set_to_none=True)
        xg.grad = None
    return run


def inference_call(module, x):
    def run():
        with torch.no_grad():
            module(x)
    return run


def speed_rows(shapes):
    rows = []
    for shape in shapes:
        for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
            ref, x = layer(shape, "direct", fmt)
            fft, _ = layer(shape, "fft", fmt)
            fft.load_state_dict(ref.state_dict())
            g = torch.randn_like(x)
            for pass_name, make in (("fwd+bwd", lambda m: training_step(m, x, g)),
                                    ("eval fwd", lambda m: inference_call(m.eval(), x))):
                lo, med, t_ref, t_fft = ratio_stats(interleaved({"direct": make(ref), "fft": make(fft)}))
                rows.append(dict(shape=str(shape), label=shape.label, layout=layout, pass_name=pass_name,
                                 direct_ms=t_ref * 1e3, fft_ms=t_fft * 1e3, ratio_min=lo, ratio_median=med))
                print(f"{str(shape):<22} {layout:<13} {pass_name:<9} direct {t_ref * 1e3:8.2f} ms  "
                      f"fft {t_fft * 1e3:8.2f} ms  speedup min {lo:5.2f}x median {med:5.2f}x", flush=True)
    return rows


def error_rows(shapes):
    """On ERROR_CHANNELS channels of each shape: every channel is computed alike, and float64
    F.conv2d (a naive loop on CPU) would take minutes on all of them."""
    rows = []
    for shape in shapes:
        pad, c = shape.padding, min(shape.c, ERROR_CHANNELS)
        x = torch.randn(shape.n, c, shape.h, shape.w, dtype=torch.float64)
        w = torch.randn(c, 1, shape.kh, shape.kw, dtype=torch.float64) / shape.kh
        b = torch.randn(c, dtype=torch.float64)
        xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
        y64 = F.conv2d(xr, wr, br, padding=pad, groups=c)
        dy = torch.randn_like(y64)
        y64.backward(dy)
        xf, wf, bf = (t.float().requires_grad_() for t in (x, w, b))
        y = replk_ops.dwconv2d(xf, wf, bf, pad, backend="fft")
        y.backward(dy.float())
        errs = {what: ((got.double() - want).abs().max() / want.abs().max()).item()
                for what, got, want in (("output", y, y64), ("grad x", xf.grad, xr.grad),
                                        ("grad weight", wf.grad, wr.grad))}
        rows.append(dict(shape=str(shape), **errs))
        print(f"{str(shape):<22} ({c} channels) fp32 error / max |float64|: "
              + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
    return rows


def auto_rows(shapes):
    rows = []
    for shape in shapes:
        for fmt in (torch.contiguous_format, torch.channels_last):
            conv, x = layer(shape, "auto", fmt)
            training_step(conv, x, torch.randn_like(x))()  # the planner's first-call measurements
            plan = replk_ops.explain(x.requires_grad_(), conv.weight)
            picks = {name: c.implementation.name for name, c in plan.choices.items()}
            rows.append(dict(shape=str(shape), layout=plan.problem.layout, picks=picks))
            print(f"{str(shape):<22} {plan.problem.layout:<13} auto picks " +
                  ", ".join(f"{k}: {v}" for k, v in picks.items()))
            print("    " + str(plan.choices["fwd"]).splitlines()[0])
    return rows


def crossover_rows(kernels=(7, 9, 11, 13, 15, 17, 21, 25, 27, 31), n=1, c=128, hw=56):
    rows = []
    for k in kernels:
        x = torch.randn(n, c, hw, hw)
        w = torch.randn(c, 1, k, k) / k
        dy = torch.randn(n, c, hw, hw)
        p = k // 2
        best = {}
        for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
            xl, dyl = x.contiguous(memory_format=fmt), dy.contiguous(memory_format=fmt)
            per_pass = {}
            for pass_name in ("fwd", "bwd_input", "bwd_weight"):
                fns = {}
                for name in ("torch", "direct", "fft"):
                    if name == "torch" and layout == "nchw" and k > 13:
                        continue  # PyTorch's naive NCHW loop: never a candidate there
                    r = by_name(name).runner
                    fns[name] = {"fwd": lambda r=r: r.fwd(xl, w, None, p, p),
                                 "bwd_input": lambda r=r: r.bwd_input(dyl, w, p, p),
                                 "bwd_weight": lambda r=r: r.bwd_weight(dyl, xl, k, k, p, p)}[pass_name]
                if pass_name == "bwd_weight":  # and fft's shared backward (the kernel's spectrum recomputed)
                    fns["fft both"] = lambda r=by_name("fft").runner: r.backward(dyl, xl, w, p, p)
                times = {name: statistics.median(t) for name, t in interleaved(fns, rounds=5).items()}
                per_pass[pass_name] = min(v for name, v in times.items() if not name.startswith("fft"))
                best[(layout, pass_name)] = per_pass[pass_name] / times["fft"]
            best[(layout, "backward")] = (per_pass["bwd_input"] + per_pass["bwd_weight"]) / times["fft both"]
        rows.append(dict(k=k, taps=k * k, **{f"{lay} {pas}": r for (lay, pas), r in best.items()}))
        print(f"k{k:<3} ({k * k:3d} taps) fft speedup over the best direct route: " +
              ", ".join(f"{lay} {pas} {r:.2f}x" for (lay, pas), r in best.items()), flush=True)
    return rows


def _peak_child(backend, shape_text, layout):
    n, c, h, w, kh, kw = (int(v) for v in shape_text.split(","))
    torch.set_num_threads(1)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(n, c, h, w).contiguous(memory_format=fmt).requires_grad_()
    wt = torch.randn(c, 1, kh, kw, requires_grad=True)
    dy = torch.randn(n, c, h, w).contiguous(memory_format=fmt)
    os.environ["REPLK_OPS_AUTOTUNE"] = "0"
    # one channel first: libraries, oneDNN primitives and FFT plans load outside the measurement
    x1, w1 = x[:, :1].detach().clone().requires_grad_(), wt[:1].detach().clone().requires_grad_()
    replk_ops.dwconv2d(x1, w1, None, (kh // 2, kw // 2), backend=backend).backward(dy[:, :1].clone())
    with open("/proc/self/clear_refs", "w") as handle:  # resets the peak resident set (VmHWM)
        handle.write("5")
    before = _status_kib("VmRSS")
    replk_ops.dwconv2d(x, wt, None, (kh // 2, kw // 2), backend=backend).backward(dy)
    print(json.dumps({"peak_rise_mib": (_status_kib("VmHWM") - before) / 1024}))


def _status_kib(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_rows(shapes):
    rows = []
    for shape in shapes:
        text = f"{shape.n},{shape.c},{shape.h},{shape.w},{shape.kh},{shape.kw}"
        for layout in ("nchw", "channels_last"):
            rise = {}
            for backend in ("direct", "fft"):
                out = subprocess.run([sys.executable, __file__, "--peak-child", backend, text, layout],
                                     capture_output=True, text=True, check=True).stdout
                rise[backend] = json.loads(out.strip().splitlines()[-1])["peak_rise_mib"]
            act = shape.n * shape.c * shape.h * shape.w * 4 / 2 ** 20
            rows.append(dict(shape=str(shape), layout=layout, activation_mib=act, **rise,
                             ratio=rise["fft"] / max(rise["direct"], 1e-9)))
            print(f"{str(shape):<22} {layout:<13} peak RSS rise of one fwd+bwd: "
                  f"direct {rise['direct']:6.1f} MiB, "
                  f"fft {rise['fft']:6.1f} MiB ({rise['fft'] / max(rise['direct'], 1e-9):.2f}x; input "
                  f"{act:.1f} MiB)", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--skip-crossover", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only-crossover", action="store_true")
    parser.add_argument("--peak-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        _peak_child(*args.peak_child)
        return 0
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.only_crossover:
        crossover_rows()
        return 0
    shapes = [Shape(1, 128, 56, 56, 31, 31, "replknet31b stage 1")] + preset("verylarge", "cpu")
    result = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    print("== speed (LargeKernelDWConv2d, backend direct vs fft) ==")
    result["speed"] = speed_rows(shapes)
    print("== fp32 error (fft) ==")
    result["error"] = error_rows(shapes)
    print("== backend='auto' ==")
    result["auto"] = auto_rows(shapes)
    if not args.skip_memory:
        print("== memory ==")
        result["memory"] = memory_rows(shapes)
    if not args.skip_crossover:
        print("== crossover (1x128x56x56, one pass at a time) ==")
        result["crossover"] = crossover_rows()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
