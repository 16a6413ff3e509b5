"""The package stays readable: no module over MAX_LINES lines and no import cycle among its modules
(module-level imports; an import inside a function runs later and cannot form a cycle at load)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "replk_ops"
MAX_LINES = 400
MODULES = sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path):
    """The replk_ops modules ``path`` imports at module level (relative imports resolved)."""
    name = _name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.startswith("replk_ops"):
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import x`
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("replk_ops"))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_is_over_the_line_limit(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by job"


def test_no_import_cycle():
    names = {_name(p) for p in MODULES}
    graph = {_name(p): {m for m in _module_level_imports(p) if m in names and m != _name(p)} for p in MODULES}
    # a package imports its submodules by design; a submodule importing its own package's
    # __init__ is the cycle to catch, so only edges between non-ancestor modules count
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state = {}

    def visit(module, path):
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycle = path[path.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


BENCHMARKS = PACKAGE.parent / "benchmarks"
# What makes a script under benchmarks/ a timing script: it times with one of these (the bench's
# timers, PyTorch's profiler, Triton's do_bench, CUDA events or the wall clock), or its docstring says a
# profiler times it (a script that only runs kernels for ncu). Static checks live in tools/, tests
# in tests/.
TIMERS = {"replk_ops.bench.timing", "replk_ops.bench.overhead", "replk_ops.bench.model_bench", "torch.profiler",
          "triton.testing"}
TIMER_CALLS = {("time", "perf_counter"), ("cuda", "Event")}


def _times_something(tree: ast.Module) -> bool:
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    calls = {(node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", ""), node.attr)
             for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    doc = ast.get_docstring(tree) or ""
    return bool(imported & TIMERS or calls & TIMER_CALLS or "for a profiler" in doc.split("\n\n")[0])


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_benchmarks_holds_timing_scripts_only(path):
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not path.name.startswith("test_") and not path.name.endswith("_test.py") and "pytest" not in imported, \
        f"{path.name} is a test: it belongs in tests/"
    assert _times_something(tree), f"{path.name} times nothing: a static check belongs in tools/, a test in tests/"


BACKENDS = PACKAGE / "backends"
BACKEND_PACKAGES = sorted(p.parent.name for p in BACKENDS.glob("*/__init__.py"))
# modules under backends/ that belong to no one backend: the runner interfaces (2-D, 3-D), the catalogue entry
# type and the space-to-batch wrapper the undilated runners share
SHARED_BACKEND_MODULES = {"__init__", "base", "base3d", "implementation", "space_to_batch"}


def test_every_backend_module_sits_inside_its_package():
    loose = sorted(p.stem for p in BACKENDS.glob("*.py") if p.stem not in SHARED_BACKEND_MODULES)
    assert not loose, f"backends/{loose[0]}.py: a backend's modules belong in backends/<name>/"
    from replk_ops import catalog

    assert sorted(package.__name__.rpartition(".")[2] for package in catalog.PRIORITY) == BACKEND_PACKAGES
    for name in ("fft_math", "fft_plan", "triton_kernels"):
        assert not (PACKAGE / f"{name}.py").exists() and not (PACKAGE / name).exists(), name


def _backend_internal(imported: str):
    """(backend, module) where ``imported`` names a module inside a backend package (not the
    package itself, nor a name its __init__ exports), else None."""
    parts = imported.split(".")
    if parts[:2] != ["replk_ops", "backends"] or len(parts) < 4 or parts[2] not in BACKEND_PACKAGES:
        return None
    inside = BACKENDS.joinpath(*parts[2:4])
    return (parts[2], imported) if inside.with_suffix(".py").exists() or inside.is_dir() else None


def test_no_module_outside_backends_imports_a_backends_internals():
    """Outside backends/, a backend is reached through its package (``replk_ops.backends.cpp``)
    or the shared modules, never ``replk_ops.backends.cpp.runner``."""
    for path in MODULES:
        if BACKENDS in path.parents:
            continue
        for imported in _module_level_imports(path):
            internal = _backend_internal(imported)
            if internal is not None:
                pytest.fail(f"{path.relative_to(PACKAGE.parent)} imports {imported}: use replk_ops.backends.{internal[0]}")


def test_backends_reach_each_other_through_their_packages():
    """Inside backends/, one backend uses another only through that package's __init__."""
    for path in MODULES:
        if BACKENDS not in path.parents or path.parent == BACKENDS:
            continue
        own = path.relative_to(BACKENDS).parts[0]
        for imported in _module_level_imports(path):
            internal = _backend_internal(imported)
            assert internal is None or internal[0] == own, f"{path.relative_to(PACKAGE.parent)} imports {imported}"
