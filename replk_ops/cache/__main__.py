"""python -m replk_ops.cache [info|clear]: where the tuning cache is and what it holds, or empty it."""
from __future__ import annotations

import argparse
import sys

from . import DIR_ENV, SWITCH_ENV, clear, directory, enabled, entries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replk_ops.cache", description=__doc__)
    parser.add_argument("command", nargs="?", default="info", choices=("info", "clear"))
    args = parser.parse_args(argv)
    if args.command == "clear":
        print(f"removed {clear()} entries from {directory().parent}")
        return 0
    state = "on" if enabled() else f"off ({SWITCH_ENV}=0)"
    print(f"tuning cache: {directory()} ({state}; {DIR_ENV} moves it)")
    counts = entries()
    for section, count in counts.items():
        print(f"  {section}: {count} entries")
    if not counts:
        print("  empty")
    return 0


if __name__ == "__main__":
    sys.exit(main())
