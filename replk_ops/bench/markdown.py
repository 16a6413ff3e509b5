"""The bench's rows as a Markdown table (``--markdown PATH``): each replk_ops row beside nn.Conv2d in
its own layout, the table the README's CPU results are."""
from __future__ import annotations

from typing import List

from .report import _same_layout, same_layout_cell
from .runner import Row


def _ms(value: float) -> str:
    """Short, without an exponent: 2706, 240.5, 2.304, 0.311."""
    return f"{value:.0f}" if value >= 1000 else f"{value:.4g}" if value >= 1 else f"{value:.3f}"


def markdown_table(rows: List[Row], env: dict, baselines: List[str]) -> str:
    lines = [f"{env['device']}, torch {env['torch']}, {env.get('clock', 'clock not recorded')}; "
             "median per call, speedup = nn.Conv2d median / replk_ops median in the same layout",
             "",
             "| shape | dtype | layout | pass | nn.Conv2d ms | replk_ops ms | speedup |",
             "| --- | --- | --- | --- | ---: | ---: | ---: |"]
    for row in rows:
        found = _same_layout(row, rows, baselines)
        if found is None:
            continue
        layout = "channels_last" if "channels_last" in row.candidate else "NCHW"
        speedup = same_layout_cell(row, rows, baselines, markup=False).replace(" ", "x ", 1)
        speedup = speedup if " " in speedup else speedup + "x"
        lines.append(f"| {row.shape} | {row.dtype} | {layout} | {row.pass_name} | {_ms(found[1].median_ms)} | "
                     f"{_ms(row.median_ms)} | {speedup} |")
    return "\n".join(lines) + "\n"
