import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Triton kernels run on CPU through the interpreter when no GPU is present; the variable must be
# set before triton is first imported.
try:
    import torch

    _HAS_GPU = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    _HAS_GPU = False
if not _HAS_GPU:
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Tests choose backends explicitly; a user's override must not leak into them.
os.environ.pop("REPLK_OPS_BACKEND", None)
# Tests measure and tune afresh: each process gets its own empty tuning cache (replk_ops.cache),
# never the user's.
_CACHE_DIR = tempfile.mkdtemp(prefix="replk_ops_test_cache_")
os.environ["REPLK_OPS_CACHE_DIR"] = _CACHE_DIR
os.environ.pop("REPLK_OPS_CACHE", None)
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
# Under pytest-xdist (the default: addopts in pyproject.toml) each worker process runs one torch
# thread, so that two workers on two cores do not fight over four threads.
if "PYTEST_XDIST_WORKER" in os.environ:
    try:
        torch.set_num_threads(1)
    except NameError:  # pragma: no cover - torch is missing; the tests will say so
        pass

# Property-based tests: "ci" (default) is bounded to keep CI short; "long" is for GPU machines and
# nightly runs: `python -m pytest tests/test_fuzz.py --hypothesis-profile=long`.
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=20, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("long", max_examples=2000, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a test extra
    pass


def pytest_collection_modifyitems(config, items):
    if _HAS_GPU:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)


@pytest.fixture
def planner_env(monkeypatch):
    """``set_env(name, value)``: set a variable the planner reads (once, at its first call) and
    make it read again; the planner starts afresh after the test."""
    import replk_ops

    def set_env(name, value):
        monkeypatch.setenv(name, value)
        replk_ops.reset()

    yield set_env
    monkeypatch.undo()
    replk_ops.reset()


@pytest.fixture(scope="session")
def built_once(tmp_path_factory):
    """``built_once(name, make)``: a directory that ``make(directory)`` fills once per test run,
    shared by the pytest-xdist workers (a file lock in their common base directory), for the
    builds a module's tests share."""
    from filelock import FileLock  # a dependency of torch

    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # the workers' base directories share this parent

    def build(name: str, make) -> Path:
        target = root / name
        with FileLock(str(target) + ".lock"):
            if not (target / ".done").exists():
                target.mkdir(exist_ok=True)
                make(str(target))
                (target / ".done").touch()
        return target
    return build
