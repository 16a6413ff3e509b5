"""The bench's outputs: a table, a JSON file and a plot."""
from __future__ import annotations

import dataclasses
import json
import platform
import re
import subprocess
from pathlib import Path
from typing import List, Optional

import torch

from .console import LEFT, RIGHT, say
from .console import print_table as console_table
from .hardware import Peaks, bounds_line
from .candidates import same_layout_baseline
from .runner import Row
from .timing import MIN_SAMPLES

# A plot axis shows at most this many (shape, dtype) groups and a file at most this many axes;
# larger presets wrap onto more axes and split into more files, so labels stay readable.
GROUPS_PER_AXIS = 8
AXES_PER_FILE = 6


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


def too_few_samples(row: Row) -> bool:
    return row.samples is not None and row.samples < MIN_SAMPLES


def spread_cell(row: Row) -> str:
    """p20-p80, or why there is none worth reading: too few measurements."""
    if too_few_samples(row):
        return f"too few samples ({row.samples})"
    return f"{row.p20_ms:.3f}-{row.p80_ms:.3f}"


def detail_cell(row: Row, limit: int = 100) -> str:
    """Why a row did not run, without the exception's boilerplate (the JSON keeps it all)."""
    text = re.sub(r"^error: \w+: ", "", row.detail)
    text = re.sub(r"^backend: '\w+' cannot run this call: ", "", text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def bound_cell(row: Row) -> str:
    return "n/a" if row.pct_of_bound is None else f"{row.pct_of_bound:.1f}"


def print_table(rows: List[Row], env: dict, baselines: List[str]) -> None:
    say(f"[bold]replk_ops bench[/bold] on {env['device']} | torch {env['torch']} | CUDA {env['cuda']} | "
        f"triton {env['triton']} | commit {env['commit']}" + (f" | {env['clock']}" if env.get("clock") else ""))
    say(bounds_line(Peaks(**env["peaks"])))
    columns = ("shape", "dtype", "pass", "backend", "median ms", "p20-p80 ms", "TFLOP/s valid", "% bound",
               *[f"x vs {b}" for b in baselines], "same layout")
    justify = [LEFT] * 4 + [RIGHT] * (len(columns) - 4)
    cells = []
    for r in rows:
        if r.status != "ok":
            cells.append([r.shape, r.dtype, r.pass_name, r.candidate, f"[red]{r.status.upper()}[/red]", detail_cell(r),
                          "", "", *["" for _ in baselines], ""])
            continue
        cells.append([r.shape, r.dtype, r.pass_name, r.candidate, f"{r.median_ms:.3f}", spread_cell(r),
                      f"{r.tflops_valid:.3g}", bound_cell(r),
                      *[f"{r.speedup[b]:.2f}" if b in r.speedup else "" for b in baselines],
                      same_layout_cell(r, rows, baselines)])
    console_table(columns, justify, cells)
    slower = [r for r in rows if is_slower_than_same_layout(r, rows, baselines)]
    if slower:
        say(f"[yellow]{len(slower)} replk_ops row(s) slower than nn.Conv2d in the same layout beyond the "
            "p20-p80 spreads (marked SLOWER)[/yellow]")


def _same_layout(row: Row, rows: List[Row], baselines: List[str]):
    """(speedup over nn.Conv2d in the row's own layout, that baseline's row), or None for a
    baseline or an untimed row."""
    if row.candidate in baselines or not row.speedup:
        return None
    name = same_layout_baseline(row.candidate, baselines)
    base = next((r for r in rows if r.candidate == name and r.shape == row.shape and r.dtype == row.dtype
                 and r.pass_name == row.pass_name and r.median_ms), None)
    if base is None or name not in row.speedup:
        return None
    return row.speedup[name], base


def verdict(row: Row, rows: List[Row], baselines: List[str]) -> Optional[str]:
    """How a replk_ops row compares with nn.Conv2d in its own layout: "faster", "slower" (p20-p80
    spreads apart), "within noise" (they overlap) or "too few samples" (either row has too few for a
    spread); None for a baseline or an untimed row."""
    found = _same_layout(row, rows, baselines)
    if found is None:
        return None
    speedup, base = found
    if too_few_samples(row) or too_few_samples(base):
        return "too few samples"
    if row.p20_ms <= base.p80_ms and base.p20_ms <= row.p80_ms:
        return "within noise"
    return "faster" if speedup > 1.0 else "slower"


def is_slower_than_same_layout(row: Row, rows: List[Row], baselines: List[str]) -> bool:
    return verdict(row, rows, baselines) == "slower"


def same_layout_cell(row: Row, rows: List[Row], baselines: List[str], markup: bool = True) -> str:
    """The speedup over nn.Conv2d in the row's own layout: marked SLOWER only where the two rows'
    p20-p80 spreads do not overlap; "within noise" where they do, "too few samples" where either
    row has too few for a spread."""
    found, said = _same_layout(row, rows, baselines), verdict(row, rows, baselines)
    if found is None:
        return ""
    text = f"{found[0]:.2f}"
    if said == "slower":
        return f"[red]{text} SLOWER[/red]" if markup else f"{text} SLOWER"
    if said in ("within noise", "too few samples"):
        return f"{text} ({said})"
    return text


def write_json(path: str, rows: List[Row], env: dict, args: dict) -> None:
    payload = {"environment": env, "arguments": args, "rows": [dataclasses.asdict(r) for r in rows]}
    Path(path).write_text(json.dumps(payload, indent=2))


def plot_paths(path: str, parts: int) -> List[str]:
    """``path`` for one file; ``stem-1.png``, ``stem-2.png``... for several."""
    if parts == 1:
        return [path]
    target = Path(path)
    return [str(target.with_name(f"{target.stem}-{i}{target.suffix or '.png'}")) for i in range(1, parts + 1)]


def write_plot(path: str, rows: List[Row], baseline: str, title: Optional[str] = None) -> List[str]:
    """Speedup bars against ``baseline``, one axis per pass and up to GROUPS_PER_AXIS shapes; returns the
    files written (more than one when the axes do not fit in one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.status == "ok" and not r.candidate.startswith("nn.Conv2d") and baseline in r.speedup]
    shape_order = [r.shape for r in ok]
    groups = sorted({(r.shape, r.dtype) for r in ok}, key=lambda g: (shape_order.index(g[0]), g[1]))
    passes = [p for p in ("fwd", "bwd_input", "bwd_weight", "fwd+bwd") if any(r.pass_name == p for r in ok)]
    candidates = sorted({r.candidate for r in ok})
    by_key = {(r.shape, r.dtype, r.pass_name, r.candidate): r for r in ok}
    chunks = [groups[i:i + GROUPS_PER_AXIS] for i in range(0, len(groups), GROUPS_PER_AXIS)] or [[]]
    panels = [(p, chunk) for p in passes for chunk in chunks] or [("fwd", [])]
    pages = [panels[i:i + AXES_PER_FILE] for i in range(0, len(panels), AXES_PER_FILE)]
    paths = plot_paths(path, len(pages))
    width = 0.8 / max(1, len(candidates))
    for page_path, page in zip(paths, pages):
        fig, axes = plt.subplots(len(page), 1, figsize=(max(7.0, 1.5 * max(len(c) for _, c in page)), 3.0 * len(page)),
                                 squeeze=False)
        for ax, (pass_name, chunk) in zip(axes[:, 0], page):
            for i, cand in enumerate(candidates):
                found = [by_key.get((s, d, pass_name, cand)) for s, d in chunk]
                values = [r.speedup[baseline] if r else 0.0 for r in found]
                bars = ax.bar([j + i * width for j in range(len(chunk))], values, width, label=cand)
                for bar, r in zip(bars, found):
                    if r is not None and r.pct_of_bound:  # the speedup a kernel at 100% of the bound would reach
                        ax.plot([bar.get_x(), bar.get_x() + width], [bar.get_height() * 100 / r.pct_of_bound] * 2,
                                color="black", linewidth=1)
            ax.axhline(1.0, color="grey", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_ylabel(f"{pass_name}\nspeedup vs\n{baseline}", fontsize=9)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(chunk))])
            ax.set_xticklabels([f"{s}\n{d}" for s, d in chunk], fontsize=8)
            ax.legend(fontsize=8)
        has_bound = any(r.pct_of_bound for r in ok)
        bound_note = "black ticks: 100% of the hardware bound" if has_bound else "no hardware bound"
        fig.suptitle(title or f"replk_ops speedup ({bound_note})")
        fig.tight_layout()
        fig.savefig(page_path, dpi=110)
        plt.close(fig)
    return paths
