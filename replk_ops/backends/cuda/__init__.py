"""``backend="cuda"``: the compiled CUDA extension ``replk_ops._C`` (csrc/), reached through its
registered ops. Its catalogue entries come from the extension's own algo table: the extension's
choice ("auto" algo, by map size) and one entry per algo ("cuda:<algo>"). The extension is loaded by
``loader`` (through the package's one checked loader)."""
from typing import Callable, List, Optional, Tuple

from ..._checks import GPU_DTYPES
from ..implementation import DTYPE_NAMES, Implementation
from . import loader, runner
from .runner import CudaRunner, algo_table, max_kernel

NAME = "cuda"  # the ``backend=`` value that selects it

# appended to the description of each CUDA algo whose row of the extension's table is not verified_on_gpu
NOT_RUN_ON_A_GPU = " (not yet run on a GPU: never picked by auto)"


def entries() -> Tuple[Implementation, ...]:
    """The extension's own choice ("auto" algo, by map size: the fallback wherever nothing is
    measured), then one entry per algo of its table, which "auto" measures where the algo has been
    verified on a GPU. Without the extension, the single entry says why."""
    table = runner.algo_table()
    listed = {name for row in table for name in row["dtypes"]}
    dtypes = tuple(d for d, name in DTYPE_NAMES.items() if name in listed) if table else GPU_DTYPES
    whole = Implementation(
        NAME, NAME, CudaRunner(), ("cuda",), dtypes, ("cuda",),
        max_kernel=runner.max_kernel, description="the CUDA extension, its kernel chosen by map size")
    found = [whole]
    for row in table:
        dtypes = tuple(d for d, name in DTYPE_NAMES.items() if name in row["dtypes"])
        auto = ("cuda",) if row["auto"] and row["verified_on_gpu"] else ()
        note = "" if row["verified_on_gpu"] else NOT_RUN_ON_A_GPU
        found.append(Implementation(
            f"{NAME}:{row['algo']}", NAME, CudaRunner(row["algo"], row.get("min_cc", 0)),
            ("cuda",), dtypes, auto, passes=(row["pass"],), max_kernel=row["max_kernel"],
            description=row.get("description", "") + note))
    return tuple(found)


def note() -> str:
    """One line for explain about the extension's build and check ("" when it is not loaded)."""
    return loader.note()


def warn_once_if_missing() -> None:
    """For the first CUDA call: warn once where a GPU is present but the extension is not loaded."""
    loader.warn_once_if_missing()


REPEATS_AN_ALGO = "available; runs one of the algos measured here (the extension's own choice among them)"


def without_repeats(problem, pass_name: str, names: List[str], rejection: Callable[[str], Optional[str]]) -> List[str]:
    """``names`` without the extension's own choice ("cuda") where every algo it may pick for this
    pass and dtype is among ``names`` or cannot run the problem (``rejection(name)`` says why):
    timing it would time one of them again."""
    if NAME not in names:
        return names
    pickable = [f"{NAME}:{row['algo']}" for row in runner.algo_table()
                if row["pass"] == pass_name and row["auto"] and DTYPE_NAMES[problem.dtype] in row["dtypes"]]
    if not pickable or any(name not in names and rejection(name) is None for name in pickable):
        return names
    return [name for name in names if name != NAME]


__all__ = ["NAME", "NOT_RUN_ON_A_GPU", "REPEATS_AN_ALGO", "CudaRunner", "algo_table", "entries", "max_kernel",
           "note", "warn_once_if_missing", "without_repeats"]
