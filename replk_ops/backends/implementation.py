"""``Implementation``: one catalogue entry, what a backend declares it can run.

An entry says which ``backend=`` name selects it, which passes it computes, on which devices, in
which dtypes, for which ranks (2-D; ``ranks=(2, 3)`` with a ``runner3d`` for the 3-D passes), up to which kernel
size, and where ``"auto"`` may pick it. Each backend package lists its own entries
(``entries()``); ``replk_ops.catalog`` puts them in "auto"'s priority order. A runner that does not
take dilation is wrapped in space-to-batch here, so no entry can call it dilated.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Tuple, Union

import torch

from .. import rules3d
from ..problem import Problem
from .base import PassRunner
from .space_to_batch import SpaceToBatch

PASSES = ("fwd", "bwd_input", "bwd_weight")
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
               torch.float64: "float64"}


@dataclasses.dataclass(frozen=True)
class Implementation:
    name: str                      # "backend" or "backend:algo", unique per pass
    backend: str                   # the ``backend=`` value that selects it
    runner: PassRunner
    devices: Tuple[str, ...]
    dtypes: Tuple[torch.dtype, ...]
    auto_devices: Tuple[str, ...]  # where "auto" may pick it
    passes: Tuple[str, ...] = PASSES
    max_kernel: Union[None, int, Callable[[], int]] = None  # None: any size
    description: str = ""
    # a rule for "auto" beyond devices: why it leaves out a problem this can run (a kernel too small
    # for the transforms to pay, for fft), or None
    auto_rule: Optional[Callable[[Problem], Optional[str]]] = None
    ranks: Tuple[int, ...] = (2,)  # the convolution ranks it runs: (2,) for 2-D, (2, 3) with runner3d
    runner3d: Optional[PassRunner] = None  # the 3-D passes (base3d.PassRunner3d) where ranks has 3

    def __post_init__(self):
        if not self.runner.takes_dilation:  # undilated kernels: dilated calls through space-to-batch
            object.__setattr__(self, "runner", SpaceToBatch(self.runner))

    @property
    def space_to_batch(self) -> bool:
        """Whether its kernels are undilated and dilated calls run through space-to-batch
        (backends/space_to_batch.py); not yet run on a GPU that way, so "auto" leaves them out of
        dilated CUDA calls."""
        return isinstance(self.runner, SpaceToBatch)

    def runner_for(self, rank: int) -> PassRunner:
        return self.runner3d if rank == 3 else self.runner

    def kernel_limit(self) -> Optional[int]:
        return self.max_kernel() if callable(self.max_kernel) else self.max_kernel

    def rejection(self, problem, pass_name: str) -> Optional[str]:
        """None if this implementation can run ``pass_name`` of ``problem`` here, else why not."""
        if problem.rank not in self.ranks:
            ranks = " and ".join(f"{rank}-D" for rank in self.ranks)
            return f"runs {ranks} convolutions only, got a {problem.rank}-D one"
        if pass_name not in self.passes:
            return f"does not implement {pass_name}"
        if problem.device_type not in self.devices:
            where = " and ".join(device.upper() for device in self.devices)
            return f"runs on {where} tensors only, got a tensor on {problem.device}"
        if problem.dtype not in self.dtypes:
            return f"supports {', '.join(DTYPE_NAMES[d] for d in self.dtypes)}, got {DTYPE_NAMES[problem.dtype]}"
        why = self.runner_for(problem.rank).unavailable_reason(problem)
        if why is not None:
            return why
        limit = self.kernel_limit()
        if limit is not None and max(problem.kh, problem.kw) > limit:
            return f"supports kernels up to {limit}x{limit}, got {problem.kh}x{problem.kw}"
        return None

    def auto_rejection(self, problem) -> Optional[str]:
        """None if "auto" may pick this implementation for ``problem``, else why not."""
        if problem.rank == 3:  # 3-D: where "auto" may pick each backend is one rule table
            return rules3d.auto_rejection(self.backend, problem)
        if problem.device_type not in self.auto_devices:
            return f"available, but \"auto\" does not pick it for {problem.device_type} tensors"
        if self.space_to_batch and problem.dilated and problem.device_type == "cuda":
            return ("available (dilation through space-to-batch), but not yet run on a GPU that way: "
                    "\"auto\" does not pick it for dilated calls")
        return self.auto_rule(problem) if self.auto_rule is not None else None


__all__ = ["DTYPE_NAMES", "PASSES", "Implementation"]
