"""python -m replk_ops.bench: replk_ops side by side with PyTorch's own depthwise conv."""
from __future__ import annotations

import argparse
import sys
import time

import torch

from . import candidates as cands, cold_start
from ..catalog import available_backends
from .overhead import measure_host_overhead, overhead_line
from .console import progress, say
from .hardware import peaks_for
from .report import environment, print_table, write_json, write_plot
from .runner import run
from .timing import MIN_SAMPLES, WALL_CAP_S, clock_name
from .shapes import PRESETS, default_batches, model_shapes, parse_shape, preset, with_batches
from .shapes3d import DESCRIPTIONS_3D

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEFAULT_PRESET = "replknet31b"
DEFAULT_BUDGET_S = 0.1
MODELS = ("replknet31b", "replknet31l", "replknet_xl")
MODELS_3D = ("uxnet3d", "mednext")  # bench/model3d.py


class UsageError(Exception):
    """A request the bench cannot serve; main() prints it on one line and exits with status 2."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m replk_ops.bench", description=__doc__)
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS) + sorted(DESCRIPTIONS_3D),
                        help=f"embedded shape set (default: {DEFAULT_PRESET})")
    parser.add_argument("--shape", action="append", default=[], metavar="N,C,H,W,kh,kw[,dilation]",
                        help="a shape to run instead of a preset (repeatable; an optional 7th field: the dilation)")
    parser.add_argument("--batch", type=int, action="append", default=[], metavar="N",
                        help="run at this batch size instead of the preset's (repeatable; default: 64 and 1 on "
                             "CUDA, 1 on CPU); with --model, the batch (default 64 on CUDA, 1 on CPU)")
    parser.add_argument("--dtype", default=None, help="comma-separated: fp32, fp16, bf16 "
                        "(default: fp32 on CPU, fp32,bf16 on CUDA)")
    parser.add_argument("--passes", default="fwd,fwd+bwd", help="comma-separated of fwd, bwd_input, "
                        "bwd_weight, fwd+bwd, or 'all' (default: fwd,fwd+bwd)")
    parser.add_argument("--device", default=None, choices=["cuda", "cpu"], help="default: cuda if available")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                        help=f"seconds of timing per row (default {DEFAULT_BUDGET_S}) for each variant, over at "
                             f"least {MIN_SAMPLES} interleaved rounds; a row stops at {WALL_CAP_S:.0f} s of wall "
                             "time and then says if it got too few samples")
    parser.add_argument("--backends", default=None, help="comma-separated replk_ops backends to time "
                        "(default: every one that 'auto' considers on the device)")
    parser.add_argument("--model", choices=MODELS + MODELS_3D, default=None,
                        help="time a whole model (training step and inference) instead of layers")
    parser.add_argument("--image-size", type=int, default=224, help="with --model (default 224)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads on CPU (default 1: timed by thread CPU time, which a busy machine "
                             "does not inflate; more: by the wall clock)")
    parser.add_argument("--no-overhead", action="store_true",
                        help="skip the last step, the per-call host overhead over nn.Conv2d")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write each replk_ops row beside nn.Conv2d in its "
                        "layout as a Markdown table")
    parser.add_argument("--plot", metavar="PATH.png", help="write a speedup plot (several files for large presets)")
    return parser.parse_args(argv)


def _device(args) -> torch.device:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available to this torch "
                         f"({torch.__version__}, torch.cuda.is_available() is False)")
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _check_sizes(args) -> None:
    if args.threads < 1:
        raise UsageError(f"--threads: expected at least 1, got {args.threads}")
    if args.budget <= 0:
        raise UsageError(f"--budget: expected seconds > 0, got {args.budget}")
    bad = [b for b in args.batch if b < 1]
    if bad:
        raise UsageError(f"--batch: expected sizes >= 1, got {bad[0]}")
    if args.image_size < 64:  # 32x downsampling, and training-mode BatchNorm needs more than one value
        raise UsageError(f"--image-size: expected at least 64, got {args.image_size}")


def _shapes(args, device: torch.device):
    if args.shape and args.preset:
        raise UsageError(f"--shape replaces the preset: give --shape or --preset {args.preset}, not both")
    try:
        shapes = [parse_shape(s) for s in args.shape] if args.shape else preset(args.preset or DEFAULT_PRESET,
                                                                                device.type)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return with_batches(shapes, args.batch) if args.batch else shapes


def _list(text: str, allowed, name: str):
    values = list(allowed) if text == "all" else [v for v in text.split(",") if v]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise UsageError(f"{name}: expected some of {', '.join(allowed)}, got {text!r}")
    return values


def _candidates(args, device: torch.device):
    candidates = cands.default_candidates(device)
    if args.backends:
        wanted = [b for b in args.backends.split(",") if b]
        if not wanted:
            raise UsageError(f"--backends: expected comma-separated backend names, got {args.backends!r}")
        candidates = [c for c in candidates if c.is_baseline] + [cands.replk_candidate(b) for b in wanted]
    return candidates


def _unrunnable(rows, candidates, requested: bool):
    """An error line for each requested backend with no row that ran."""
    problems = []
    for c in candidates:
        own = [r for r in rows if r.candidate == c.name]
        if requested and not c.is_baseline and own and all(r.status == "error" for r in own):
            detail = own[0].detail.removeprefix("error: ")
            problems.append(f"--backends: {c.name} could not run any row ({detail})")
    return problems


def preset_line(name: str, batches, device_type: str) -> str:
    """What a preset run times, batch sizes included (the CPU default differs from the GPU one)."""
    line = f"preset {name} ({PRESETS[name]}) at batch {', '.join(map(str, batches or default_batches(device_type)))}"
    if not batches and device_type != "cuda":
        line += f" on CPU (on CUDA: {', '.join(map(str, default_batches('cuda')))}; --batch N to change it)"
    return line


def _run_model(args, device, env, budget) -> int:
    batch = (args.batch or [64 if device.type == "cuda" else 1])[0]
    if args.model in MODELS_3D:
        from .model3d import print_rows, run_model3d

        model_rows = run_model3d(args.model, device, (args.batch or [2 if device.type == "cuda" else 1])[0], budget)
    else:
        from .model_bench import print_rows, run_model

        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # the model bench's autocast
        say(cold_start.start_line(model_shapes(args.model, batch), [dtype], device, _triton_runs(device)))
        model_rows = run_model(args.model, device, batch, args.image_size, budget)
    print_rows(model_rows)
    if args.json:
        import json
        from pathlib import Path

        Path(args.json).write_text(json.dumps({"environment": env, "arguments": vars(args),
                                               "models": model_rows}, indent=2))
    return 0


def _triton_runs(device: torch.device) -> bool:
    """Whether the bench's rows reach the Triton kernels (which tune on first use)."""
    return device.type == "cuda" and "triton" in available_backends(device)


def run_bench(args) -> int:
    _check_sizes(args)
    device = _device(args)
    started, cpu_started = time.perf_counter(), time.process_time()
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    try:
        code = _run_bench(args, device)
    finally:
        torch.set_num_threads(threads)
    say(f"bench took {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu_started:.0f} s CPU")
    return code


def _run_bench(args, device: torch.device) -> int:
    peaks = peaks_for(device)
    env = environment(device, peaks)
    if device.type == "cpu":
        env["clock"] = clock_name(args.threads)
    if args.model:
        if args.shape or args.preset:
            raise UsageError("--model times a whole network: it takes no --shape or --preset")
        return _run_model(args, device, env, args.budget)
    if args.preset in DESCRIPTIONS_3D:
        from .run3d import run_preset3d  # 3-D layers: their own runner and table

        return run_preset3d(args, device, env)
    dtype_names = _list(args.dtype or ("fp32,bf16" if device.type == "cuda" else "fp32"), tuple(DTYPES), "--dtype")
    passes = _list(args.passes, cands.PASSES, "--passes")
    shapes = _shapes(args, device)
    if not args.shape:
        args.preset = args.preset or DEFAULT_PRESET  # so the JSON names what ran
        say(preset_line(args.preset, args.batch, device.type))
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot: needs matplotlib (pip install matplotlib, or the package's [bench] "
                             "extra)") from None
    candidates = _candidates(args, device)
    say(cold_start.start_line(shapes, [DTYPES[d] for d in dtype_names], device, _triton_runs(device)))
    with progress(len(shapes) * len(dtype_names) * len(passes)) as tick:
        rows = run(shapes, [DTYPES[d] for d in dtype_names], passes, candidates, device, peaks, args.budget, tick)
    baselines = [c.name for c in candidates if c.is_baseline]
    print_table(rows, env, baselines)
    if not args.no_overhead:
        found = measure_host_overhead(device)
        env["host_overhead_us"] = {name: timing.median_ms for name, timing in found.items()}
        env["host_overhead_spread_us"] = {name: [timing.p20_ms, timing.p80_ms] for name, timing in found.items()}
        say(overhead_line(found))
    if args.markdown:
        from pathlib import Path

        from .markdown import markdown_table

        Path(args.markdown).write_text(markdown_table(rows, env, baselines))
    if args.json:
        write_json(args.json, rows, env, vars(args))
    if args.plot:
        written = write_plot(args.plot, rows, baselines[0])
        print(f"plot: {', '.join(written)}")
    problems = _unrunnable(rows, candidates, requested=bool(args.backends))
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 1 if problems else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run_bench(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
