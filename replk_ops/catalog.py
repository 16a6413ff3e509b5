"""Every implementation replk_ops can run, registered once with what it can run.

An ``Implementation`` says which backend name selects it, which passes it computes, on which
devices, in which dtypes and up to which kernel size, and where ``"auto"`` may pick it. The
planner (``planner.py``), ``explain``, the bench and the tests all read this list; names, dtype
lists and limits come from here. The CUDA extension contributes one entry per kernel ("algo")
from its own table (``torch.ops.replk_ops_C.algo_table``), so adding a CUDA kernel is one row of
that table and adding a backend is one entry below.
"""
from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Callable, List, Optional, Tuple, Union

import torch

from . import cpu_rules, fft_plan, rules3d
from ._checks import GPU_DTYPES, SUPPORTED_DTYPES
from .backends import cuda, triton
from .backends.base import Backend
from .backends.cpp import CppBackend
from .backends.cpp3d import Cpp3d
from .backends.direct import DirectBackend
from .backends.direct3d import Direct3d
from .backends.fft import FFTBackend
from .backends.fft3d import FFT3d
from .backends.space_to_batch import SpaceToBatch
from .backends.torch_native import TorchNativeBackend
from .backends.torch_native3d import TorchNative3d
from .problem import Problem
from .triton_kernels import DTYPES as TRITON_DTYPES, MAX_KERNEL as TRITON_MAX_KERNEL

PASSES = ("fwd", "bwd_input", "bwd_weight")
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
               torch.float64: "float64"}
# appended to the description of each CUDA algo whose row of the extension's table is not verified_on_gpu
NOT_RUN_ON_A_GPU = " (not yet run on a GPU: never picked by auto)"


@dataclasses.dataclass(frozen=True)
class Implementation:
    name: str                      # "backend" or "backend:algo", unique per pass
    backend: str                   # the ``backend=`` value that selects it
    runner: Backend
    devices: Tuple[str, ...]
    dtypes: Tuple[torch.dtype, ...]
    auto_devices: Tuple[str, ...]  # where "auto" may pick it
    passes: Tuple[str, ...] = PASSES
    max_kernel: Union[None, int, Callable[[], int]] = None  # None: any size
    description: str = ""
    # Undilated kernels that run dilated calls through space-to-batch (backends/space_to_batch.py);
    # not yet run on a GPU that way, so "auto" leaves them out of dilated CUDA calls.
    space_to_batch: bool = False
    # a rule for "auto" beyond devices: why it leaves out a problem this can run (a kernel too small
    # for the transforms to pay, for fft), or None
    auto_rule: Optional[Callable[[Problem], Optional[str]]] = None
    # The 3-D passes (backends/base3d.Backend3d) of a backend that declares rank 3 among its ranks
    ranks: Tuple[int, ...] = (2,)
    runner3d: Optional[Backend] = None

    def runner_for(self, rank: int) -> Backend:
        return self.runner3d if rank == 3 else self.runner

    def kernel_limit(self) -> Optional[int]:
        return self.max_kernel() if callable(self.max_kernel) else self.max_kernel

    def rejection(self, problem, pass_name: str) -> Optional[str]:
        """None if this implementation can run ``pass_name`` of ``problem`` here, else why not."""
        if pass_name not in self.passes:
            return f"does not implement {pass_name}"
        rank = problem.rank
        if rank not in self.ranks:
            return f"runs {' and '.join(f'{r}-D' for r in self.ranks)} convolutions only, got a {rank}-D one"
        if problem.device_type not in self.devices:
            where = " and ".join(device.upper() for device in self.devices)
            return f"runs on {where} tensors only, got a tensor on {problem.device}"
        if problem.dtype not in self.dtypes:
            return f"supports {', '.join(DTYPE_NAMES[d] for d in self.dtypes)}, got {DTYPE_NAMES[problem.dtype]}"
        why = self.runner_for(rank).unavailable_reason(problem)
        if why is not None:
            return why
        limit = self.kernel_limit()
        if limit is not None and max(problem.kh, problem.kw) > limit:
            return f"supports kernels up to {limit}x{limit}, got {problem.kh}x{problem.kw}"
        return None

    def auto_rejection(self, problem) -> Optional[str]:
        """None if "auto" may pick this implementation for ``problem``, else why not."""
        if problem.rank == 3:
            return rules3d.auto_rejection(self.backend, problem)
        if problem.device_type not in self.auto_devices:
            return f"available, but \"auto\" does not pick it for {problem.device_type} tensors"
        if self.space_to_batch and problem.dilated and problem.device_type == "cuda":
            return ("available (dilation through space-to-batch), but not yet run on a GPU that way: "
                    "\"auto\" does not pick it for dilated calls")
        return self.auto_rule(problem) if self.auto_rule is not None else None


_BACKEND_ENTRIES = (
    Implementation(
        "torch", "torch", TorchNativeBackend(), ("cpu", "cuda"), SUPPORTED_DTYPES, ("cpu", "cuda"),
        ranks=(2, 3), runner3d=TorchNative3d(),
        description="PyTorch's own convolution in the caller's layout and dtype (what nn.Conv2d runs)"),
    Implementation(
        "direct", "direct", DirectBackend(), ("cpu", "cuda"), SUPPORTED_DTYPES, ("cpu",),
        ranks=(2, 3), runner3d=Direct3d(),
        description="every pass as a float32 forward convolution, on CPU through channels_last (oneDNN)"),
    Implementation(
        "cpp", "cpp", CppBackend(), ("cpu",), SUPPORTED_DTYPES, ("cpu",), auto_rule=cpu_rules.cpp_auto_rejection,
        ranks=(2, 3), runner3d=Cpp3d(),
        description="compiled C++ loops over zero-padded planes (replk_ops._cpu), any dilation: the CPU route for "
                    "dilated and small kernels"),
    Implementation(
        "triton", "triton", SpaceToBatch(triton.TritonBackend()), ("cpu", "cuda"), TRITON_DTYPES, ("cuda",),
        max_kernel=TRITON_MAX_KERNEL, space_to_batch=True,
        description="Triton tensor-core kernels (CPU tensors only through the Triton interpreter, for tests)"),
    Implementation(
        "fft", "fft", FFTBackend(), ("cpu", "cuda"), SUPPORTED_DTYPES, ("cpu", "cuda"),
        auto_rule=fft_plan.auto_rejection, ranks=(2, 3), runner3d=FFT3d(),
        description="products of 2-D real FFTs (torch.fft); its cost per pixel hardly grows with the kernel"),
)

BACKEND_NAMES = ("auto",) + tuple(dict.fromkeys(e.backend for e in _BACKEND_ENTRIES)) + ("cuda",)
# Old names still accepted for one release, with a FutureWarning: the name each now has.
DEPRECATED_BACKEND_NAMES = {"reference": "direct"}


def check_backend_name(backend: str, argument: str = "backend") -> str:
    """``backend`` if it names a backend (a deprecated name: its new name, with a warning, once);
    ValueError naming ``argument`` else."""
    if isinstance(backend, str) and backend in DEPRECATED_BACKEND_NAMES:
        new = DEPRECATED_BACKEND_NAMES[backend]
        if backend not in _WARNED:
            _WARNED.add(backend)
            warnings.warn(f"{argument}: {backend!r} is now called {new!r}; the old name will be removed in a "
                          "future release", FutureWarning, stacklevel=3)
        return new
    if not isinstance(backend, str) or backend not in BACKEND_NAMES:
        raise ValueError(f"{argument}: expected one of {BACKEND_NAMES}, got {backend!r}")
    return backend


_WARNED = set()


def _cuda_entries() -> Tuple[Implementation, ...]:
    """The extension's own choice ("auto" algo, by map size: the fallback wherever nothing is
    measured), then one entry per algo of its table, which "auto" measures where the algo has been
    verified on a GPU. Without the extension, the single entry says why."""
    table = cuda.algo_table()
    listed = {name for row in table for name in row["dtypes"]}
    dtypes = tuple(d for d, name in DTYPE_NAMES.items() if name in listed) if table else GPU_DTYPES
    whole = Implementation(
        "cuda", "cuda", SpaceToBatch(cuda.CudaBackend()), ("cuda",), dtypes, ("cuda",),
        max_kernel=cuda.max_kernel, description="the CUDA extension, its kernel chosen by map size",
        space_to_batch=True)
    entries = [whole]
    for row in table:
        dtypes = tuple(d for d, name in DTYPE_NAMES.items() if name in row["dtypes"])
        auto = ("cuda",) if row["auto"] and row["verified_on_gpu"] else ()
        note = "" if row["verified_on_gpu"] else NOT_RUN_ON_A_GPU
        entries.append(Implementation(
            f"cuda:{row['algo']}", "cuda", SpaceToBatch(cuda.CudaBackend(row["algo"], row.get("min_cc", 0))),
            ("cuda",), dtypes, auto, passes=(row["pass"],), max_kernel=row["max_kernel"],
            description=row.get("description", "") + note, space_to_batch=True))
    return tuple(entries)


@functools.lru_cache(maxsize=None)
def implementations() -> Tuple[Implementation, ...]:
    """Every implementation, in "auto"'s priority order where nothing else decides: the compiled
    kernels first, then Triton, then PyTorch's own paths, then fft."""
    torch_entry, direct_entry, cpp_entry, triton_entry, fft_entry = _BACKEND_ENTRIES
    return _cuda_entries() + (triton_entry, torch_entry, direct_entry, cpp_entry, fft_entry)


def by_name(name: str, pass_name: str = "fwd") -> Implementation:
    """The implementation called ``name`` for ``pass_name`` (a CUDA algo's name is unique per pass:
    the forward's "cuda:mma" is not the weight gradient's)."""
    for impl in implementations():
        if impl.name == name and pass_name in impl.passes:
            return impl
    raise KeyError(f"{name} ({pass_name})")


def for_pass(pass_name: str) -> Tuple[Implementation, ...]:
    return tuple(impl for impl in implementations() if pass_name in impl.passes)


def backend_of(name: str) -> str:
    """The backend an implementation's name belongs to: "cuda:mma_rows" -> "cuda"."""
    return name.split(":", 1)[0]


def available_backends(device=None) -> List[str]:
    """Backend names that can run float32 calls on ``device`` (default: CUDA if present, else CPU)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    problem = Problem(str(torch.device(device)), torch.float32, "nchw", True, 1, 1, 1, 1, 1, 0, 0, False)
    runnable = [impl.backend for impl in implementations() if impl.rejection(problem, "fwd") is None]
    return list(dict.fromkeys(runnable))


__all__ = ["Implementation", "available_backends", "PASSES", "BACKEND_NAMES", "check_backend_name", "implementations",
           "by_name", "for_pass", "backend_of"]
