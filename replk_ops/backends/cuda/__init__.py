"""``backend="cuda"``: the compiled CUDA extension ``replk_ops._C`` (csrc/), reached through its
registered ops. Its catalogue entries come from the extension's own algo table: the extension's
choice ("auto" algo, by map size) and one entry per algo ("cuda:<algo>"). The extension is loaded by
``replk_ops._extension``."""
from typing import Tuple

from ..._checks import GPU_DTYPES
from ..implementation import DTYPE_NAMES, Implementation
from . import runner
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


__all__ = ["NAME", "NOT_RUN_ON_A_GPU", "CudaRunner", "algo_table", "entries", "max_kernel"]
