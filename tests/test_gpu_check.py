"""benchmarks/gpu_check.sh on CPU: its dry run lists the default steps with limits that add up to
at most 9 minutes, and every script it calls exists."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
BUDGET_S = 540  # one lent GPU slot is about 15 minutes, start-up included


def _dry_run(steps=None):
    env = {"PATH": "/usr/bin:/bin", "GPU_CHECK_DRY_RUN": "1"}
    if steps:
        env["GPU_CHECK_STEPS"] = steps
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_default_steps_fit_nine_minutes():
    done = _dry_run()
    assert done.returncode == 0, done.stderr
    default = done.stdout.split("on request")[0]
    limits = {m[0]: int(m[1]) for m in re.findall(r"^(\w+) (\d+) s ->", default, re.M)}
    assert {"build", "tests", "sanitizer", "algos", "bench_cold", "bench_warm", "model_cold", "model_warm",
            "first_step_cold", "first_step_warm"} <= set(limits)
    assert sum(limits.values()) <= BUDGET_S, limits
    assert f"total {sum(limits.values())} s" in default
    logs = set(re.findall(r"-> (\S+)", default))
    assert len(logs | {"README.md", "bench.json", "first_step_cold.json", "first_step_warm.json"}) <= 8


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_steps_on_request_and_unknown_names():
    assert "profile 180 s" in _dry_run("build profile").stdout
    done = _dry_run("nonsense")
    assert done.returncode == 2 and "no step named nonsense" in done.stderr


def test_every_script_it_calls_exists():
    text = SCRIPT.read_text()
    called = set(re.findall(r"\b((?:benchmarks|tools|tests)/[\w/]+\.(?:py|sh))", text))
    assert called and all((ROOT / path).is_file() for path in called), sorted(called)
