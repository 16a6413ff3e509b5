"""Is a converted layer ever slower than the nn.Conv2d it replaced? (CPU)

    python benchmarks/never_slower.py [--quick | --dilated] [--json out.json]

For each shape, layout (NCHW, channels_last) and pass (inference forward, forward+backward), times
``nn.Conv2d`` and ``LargeKernelDWConv2d`` (backend "auto", same weights) as modules, with the
bench's own CPU timer (replk_ops.bench.timing: one torch thread, thread CPU time, the two interleaved
round by round so that a noisy machine slows both alike, a wall-clock cap), and reports the ratio of
the medians (above 1: replk_ops is faster). Also the bench's per-call host overhead at 1x8x8x8 k7,
where the convolution itself costs almost nothing. The first call of each layer (the planner's
measurement) is left out: it happens once per kind. The bench itself (``python -m replk_ops.bench
--markdown PATH``) times the functional ops the same way; this script adds the module call and the
shapes the never-slower target names.
"""
from __future__ import annotations

import argparse
import json

import torch
from torch import nn

import replk_ops
from replk_ops.bench.overhead import measure_host_overhead, overhead_line, training_steps
from replk_ops.bench.shapes import PRESETS, STAGES, Shape, preset
from replk_ops.bench.timing import time_interleaved

BUDGET_S = 0.3  # thread CPU seconds per layer and pass, over at least timing.MIN_SAMPLES rounds


def extra_shapes():
    """The shapes the never-slower target names beyond the presets."""
    stages = [Shape(n, c, hw, hw, k, k, f"replknet31b stage {i + 1}") for n in (1, 4)
              for i, (c, hw, k) in enumerate(STAGES["replknet31b"])]
    return stages + [
        Shape(1, 96, 56, 56, 51, 5, "slak 51x5"), Shape(1, 96, 56, 56, 5, 51, "slak 5x51"),
        Shape(1, 192, 28, 28, 49, 5, "slak 49x5"),
        Shape(1, 96, 56, 56, 7, 7, "convnext"), Shape(8, 384, 14, 14, 7, 7, "convnext"),
        Shape(1, 256, 24, 24, 11, 3, "rectangular 11x3"),
    ] + dilated_shapes()


def dilated_shapes():
    """UniRepLKNet's dilated branches beside a 13x13 kernel (stages 2 and 3 of UniRepLKNet-A) and
    LSKNet's 7x7 with dilation 3."""
    branches = [Shape(1, c, hw, hw, k, k, f"unireplknet {k}x{k} d{d}", dilation=d)
                for c, hw in ((80, 28), (160, 14)) for k, d in ((7, 2), (3, 3), (3, 4), (3, 5))]
    return branches + [Shape(1, 64, 56, 56, 7, 7, "lsknet 7x7 d3", dilation=3)]


def all_shapes(quick: bool, dilated: bool = False):
    if dilated:
        return dilated_shapes()
    shapes = extra_shapes()
    if not quick:
        for name in PRESETS:
            shapes += preset(name, "cpu")
    seen, unique = set(), []
    for s in shapes:
        key = (s.n, s.c, s.h, s.w, s.kh, s.kw, s.dilation)
        if key not in seen and s.layers == 1:
            seen.add(key)
            unique.append(s)
    return unique


def layers(shape: Shape):
    conv = nn.Conv2d(shape.c, shape.c, (shape.kh, shape.kw), padding=shape.padding, dilation=shape.dilation,
                     groups=shape.c)
    fast = replk_ops.LargeKernelDWConv2d(shape.c, (shape.kh, shape.kw), padding=shape.padding,
                                         dilation=shape.dilation)
    fast.load_state_dict(conv.state_dict())
    return conv, fast


def step_fn(module, x, grad_out, train: bool):
    inference, training = training_steps(module, x, grad_out)
    return training if train else inference


def compare(fn_a, fn_b, budget_s: float = BUDGET_S):
    """Per-call thread CPU seconds of each (median over rounds) and their ratio a/b, by the bench's
    own interleaved timer (the one the bench's CPU rows come from)."""
    timings = time_interleaved({"a": fn_a, "b": fn_b}, budget_s)
    a, b = timings["a"].median_ms / 1e3, timings["b"].median_ms / 1e3
    return a, b, a / b


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the shapes the target names, not every preset")
    parser.add_argument("--dilated", action="store_true", help="only the dilated shapes")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    found = measure_host_overhead(torch.device("cpu"))
    print(overhead_line(found))
    overhead = {name: timing.median_ms for name, timing in found.items()}
    rows = []
    header = f"{'shape':<22} {'layout':<13} {'pass':<9} {'nn.Conv2d ms':>12} {'replk_ops ms':>12} {'speedup':>8}"
    print(header)
    for shape in all_shapes(args.quick, args.dilated):
        conv, fast = layers(shape)
        for layout in ("nchw", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            x = torch.randn(shape.n, shape.c, shape.h, shape.w).contiguous(memory_format=fmt)
            g = torch.randn(shape.n, shape.c, shape.h, shape.w).contiguous(memory_format=fmt)
            for train in (False, True):
                a, b, ratio = compare(step_fn(conv, x, g, train), step_fn(fast, x, g, train))
                row = dict(shape=str(shape), label=shape.label, layout=layout, pass_name="fwd+bwd" if train else "fwd",
                           conv2d_ms=a * 1e3, replk_ms=b * 1e3, speedup=ratio,
                           plan=[c.implementation.name for c in replk_ops.explain(
                               x, fast.weight, fast.padding, dilation=fast.dilation).choices.values()])
                rows.append(row)
                flag = "  <-- slower" if ratio < 0.95 else ""
                print(f"{str(shape):<22} {layout:<13} {row['pass_name']:<9} {row['conv2d_ms']:12.3f} "
                      f"{row['replk_ms']:12.3f} {ratio:7.2f}x{flag}  {'/'.join(row['plan'])}", flush=True)
    worst = min(rows, key=lambda r: r["speedup"])
    print(f"worst: {worst['shape']} {worst['layout']} {worst['pass_name']} {worst['speedup']:.2f}x; "
          f"{sum(r['speedup'] < 0.95 for r in rows)} of {len(rows)} rows below 0.95x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"host_overhead_us": overhead, "rows": rows, "torch": torch.__version__}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
