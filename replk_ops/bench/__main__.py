"""python -m replk_ops.bench: replk_ops side by side with PyTorch's own depthwise conv."""
from __future__ import annotations

import argparse
import sys
import time

import torch

from . import candidates as cands
from .hardware import peaks_for
from .report import environment, print_table, write_json, write_plot
from .runner import run
from .shapes import PRESETS, parse_shape, preset

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m replk_ops.bench", description=__doc__)
    parser.add_argument("--preset", default="replknet31b", choices=sorted(PRESETS),
                        help="embedded shape set (default: replknet31b)")
    parser.add_argument("--shape", action="append", default=[], metavar="N,C,H,W,kh,kw",
                        help="a shape to run instead of the preset (repeatable)")
    parser.add_argument("--batch", type=int, action="append", default=[], help="keep only these batch sizes")
    parser.add_argument("--dtype", default=None, help="comma-separated: fp32, fp16, bf16 "
                        "(default: fp32 on CPU, fp32,bf16 on CUDA)")
    parser.add_argument("--passes", default="fwd,fwd+bwd", help="comma-separated of fwd, bwd_input, "
                        "bwd_weight, fwd+bwd, or 'all' (default: fwd,fwd+bwd)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--budget", type=float, default=None, help="seconds of timing per row "
                        "(default 0.1 on CPU, 0.1 on CUDA)")
    parser.add_argument("--backends", default=None, help="comma-separated replk_ops backends to time "
                        "(default: every available one)")
    parser.add_argument("--model", choices=["replknet31b", "replknet31l", "replknet_xl"], default=None,
                        help="time a whole model (training step and inference) instead of layers")
    parser.add_argument("--image-size", type=int, default=224, help="with --model (default 224)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH.png", help="write a speedup plot")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype_names = (args.dtype or ("fp32,bf16" if device.type == "cuda" else "fp32")).split(",")
    unknown = [d for d in dtype_names if d not in DTYPES]
    if unknown:
        sys.exit(f"--dtype: expected fp32, fp16 or bf16, got {','.join(unknown)}")
    passes = list(cands.PASSES) if args.passes == "all" else args.passes.split(",")
    bad = [p for p in passes if p not in cands.PASSES]
    if bad:
        sys.exit(f"--passes: expected some of {', '.join(cands.PASSES)}, got {','.join(bad)}")
    try:
        shapes = [parse_shape(s) for s in args.shape] if args.shape else preset(args.preset, device.type)
    except ValueError as exc:
        sys.exit(str(exc))
    if args.batch:
        shapes = [s for s in shapes if s.n in args.batch]
    candidates = cands.default_candidates(device)
    if args.backends:
        wanted = args.backends.split(",")
        candidates = [c for c in candidates if c.is_baseline] + [cands.replk_candidate(b) for b in wanted]
    peaks = peaks_for(device)
    env = environment(device, peaks)
    budget = args.budget if args.budget is not None else 0.1
    if args.model:
        from .model_bench import print_rows, run_model

        batch = (args.batch or [64 if device.type == "cuda" else 1])[0]
        model_rows = run_model(args.model, device, batch, args.image_size, budget)
        print_rows(model_rows)
        if args.json:
            import json
            from pathlib import Path

            Path(args.json).write_text(json.dumps({"environment": env, "arguments": vars(args),
                                                   "models": model_rows}, indent=2))
        return 0

    from rich.progress import Progress

    started = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(shapes) * len(dtype_names) * len(passes) * len(candidates))

        def tick(text):
            progress.update(task, advance=1, description=text[:60])

        rows = run(shapes, [DTYPES[d] for d in dtype_names], passes, candidates, device, peaks, budget, tick)
    baselines = [c.name for c in candidates if c.is_baseline]
    print_table(rows, env, baselines)
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        write_json(args.json, rows, env, vars(args))
    if args.plot:
        write_plot(args.plot, rows, baselines[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
