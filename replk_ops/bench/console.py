"""Terminal output for the bench: rich tables and a progress bar when rich is installed (the
``bench`` extra), plain aligned text without it, so the bench never needs rich to run."""
from __future__ import annotations

import contextlib
import re
from typing import Callable, Iterator, List, Sequence

try:
    import rich
except ImportError:  # a core install: plain text
    rich = None

LEFT = "left"
RIGHT = "right"
_MARKUP = re.compile(r"\[/?[a-z ]+\]")


def plain(text: str) -> str:
    """``text`` without rich markup such as [bold] or [red]."""
    return _MARKUP.sub("", text)


def _console():
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=400)  # logs and CI: never wrap tables


def say(text: str) -> None:
    if rich is None:
        print(plain(text))
    else:
        _console().print(text)


def print_table(columns: Sequence[str], justify: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> None:
    if rich is not None:
        from rich.table import Table

        table = Table(title=title or None)
        for column, side in zip(columns, justify):
            table.add_column(column, justify=side)
        for row in rows:
            table.add_row(*row)
        _console().print(table)
        return
    cells: List[List[str]] = [list(columns)] + [[plain(c) for c in row] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    if title:
        print(title)
    for n, line in enumerate(cells):
        print("  ".join(c.ljust(w) if side == LEFT else c.rjust(w) for c, w, side in zip(line, widths, justify)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


@contextlib.contextmanager
def progress(total: int) -> Iterator[Callable[[str], None]]:
    """A callback that advances a transient progress bar by one step (no bar without rich)."""
    if rich is None:
        yield lambda text: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("benchmarking", total=total)
        yield lambda text: bar.update(task, advance=1, description=text[:60])
