"""The README works as written: every Python block runs unchanged (each in a fresh interpreter,
from an empty directory, CPU-sized on a machine without a GPU), and the Quickstart's two commands
are exactly what CI runs."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conv_testing import HANG_GUARD_S

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# a fenced block, also indented inside a list item: (indent, language, body)
FENCE = re.compile(r"^([ \t]*)```(\w*)[ \t]*\n(.*?)^\1```[ \t]*$", re.M | re.S)


def blocks(language: str):
    """(line number, dedented body) of every ``language`` block of the README."""
    found = []
    for match in FENCE.finditer(README):
        if match.group(2) == language:
            line = README.count("\n", 0, match.start()) + 1
            found.append((line, textwrap.dedent(match.group(3))))
    return found


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else len(README)]


def bash_blocks(text: str):
    """The stripped bodies of the bash blocks in ``text``."""
    return [m.group(3).strip() for m in FENCE.finditer(text) if m.group(2) == "bash"]


PYTHON_BLOCKS = blocks("python")


def test_the_readme_has_python_blocks():
    assert len(PYTHON_BLOCKS) >= 3, "expected the Use, RepLKNet and compat examples"


@pytest.mark.parametrize("line, code", PYTHON_BLOCKS, ids=[f"README.md:{line}" for line, _ in PYTHON_BLOCKS])
def test_python_block_runs_as_written(tmp_path, line, code):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert done.returncode == 0, f"README.md:{line} failed:\n{done.stderr[-3000:]}"


def test_quickstart_is_two_commands_that_ci_runs_verbatim():
    commands = bash_blocks(section("Quickstart"))
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    setup, tests = commands
    assert "venv" in setup and setup.endswith("python -m replk_ops.bench"), setup
    assert tests.endswith("python -m pytest"), tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci, f".ci/run does not run the Quickstart's command as written: {command}"


def test_tests_section_runs_the_quickstart_test_command():
    assert bash_blocks(section("Quickstart"))[1] in bash_blocks(section("Tests"))
