"""The bench's outputs: a table, a JSON file and a plot."""
from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from pathlib import Path
from typing import List, Optional

import torch

from .hardware import Peaks
from .runner import Row


def environment(device: torch.device, peaks: Peaks) -> dict:
    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "peaks": dataclasses.asdict(peaks),
    }
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if device.type == "cuda":
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    try:
        root = Path(__file__).resolve().parents[2]
        env["commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["commit"] = None
    return env


def print_table(rows: List[Row], env: dict, baselines: List[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # logs and CI: never wrap the table
        console = Console(width=200)
    console.print(f"[bold]replk_ops bench[/bold] on {env['device']} | torch {env['torch']} | CUDA {env['cuda']} | "
                  f"triton {env['triton']} | commit {env['commit']}")
    peaks = env["peaks"]
    console.print(f"bounds ({peaks['source']}): fp32 {peaks['fma_tflops']:.2f} TFLOP/s, tensor "
                  f"{peaks['tensor_tflops'] or '-'} TFLOP/s, {peaks['bandwidth_tbs']:.3f} TB/s")
    table = Table(show_lines=False)
    for col in ("shape", "dtype", "pass", "backend", "median ms", "p20-p80 ms", "TFLOP/s valid",
                "% bound", *[f"x vs {b}" for b in baselines]):
        table.add_column(col, justify="left" if col in ("shape", "pass", "backend", "dtype") else "right")
    for r in rows:
        if r.status != "ok":
            table.add_row(r.shape, r.dtype, r.pass_name, r.candidate, f"[red]{r.status.upper()}[/red]", r.detail[:60],
                          "", "", *["" for _ in baselines])
            continue
        table.add_row(r.shape, r.dtype, r.pass_name, r.candidate, f"{r.median_ms:.3f}",
                      f"{r.p20_ms:.3f}-{r.p80_ms:.3f}", f"{r.tflops_valid:.3f}", f"{r.pct_of_bound:.1f}",
                      *[f"{r.speedup[b]:.2f}" if b in r.speedup else "" for b in baselines])
    console.print(table)


def write_json(path: str, rows: List[Row], env: dict, args: dict) -> None:
    payload = {"environment": env, "arguments": args, "rows": [dataclasses.asdict(r) for r in rows]}
    Path(path).write_text(json.dumps(payload, indent=2))


def write_plot(path: str, rows: List[Row], baseline: str, title: Optional[str] = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.status == "ok" and not r.candidate.startswith("nn.Conv2d") and baseline in r.speedup]
    groups = sorted({(r.shape, r.dtype) for r in ok}, key=lambda g: [r.shape for r in ok].index(g[0]))
    passes = [p for p in ("fwd", "bwd_input", "bwd_weight", "fwd+bwd") if any(r.pass_name == p for r in ok)]
    candidates = sorted({r.candidate for r in ok})
    fig, axes = plt.subplots(len(passes) or 1, 1, figsize=(max(8, 1.2 * len(groups)), 3.2 * max(1, len(passes))),
                             squeeze=False)
    width = 0.8 / max(1, len(candidates))
    for ax, pass_name in zip(axes[:, 0], passes):
        for i, cand in enumerate(candidates):
            values = [next((r.speedup[baseline] for r in ok if (r.shape, r.dtype) == g and r.pass_name == pass_name
                            and r.candidate == cand), 0.0) for g in groups]
            bars = ax.bar([j + i * width for j in range(len(groups))], values, width, label=cand)
            for bar, r in zip(bars, [next((r for r in ok if (r.shape, r.dtype) == g and r.pass_name == pass_name
                                           and r.candidate == cand), None) for g in groups]):
                if r is not None:  # the hardware bound, as the speedup a kernel at 100% of it would reach
                    ax.plot([bar.get_x(), bar.get_x() + width], [bar.get_height() * 100 / r.pct_of_bound] * 2,
                            color="black", linewidth=1)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel(f"{pass_name}\nspeedup vs\n{baseline}")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
        ax.set_xticklabels([f"{s}\n{d}" for s, d in groups], fontsize=7)
        ax.legend(fontsize=7)
    fig.suptitle(title or "replk_ops speedup (black ticks: 100% of the hardware bound)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
