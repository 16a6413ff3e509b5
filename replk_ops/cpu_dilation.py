"""The planner's rule for dilated float32/float64 calls on CPU (docs/design.md, "Dilation").

PyTorch's dilated depthwise backward is a slow loop on CPU: the direct backend's passes took 2 to
20 times less at every UniRepLKNet and LSKNet shape measured, so both backward passes run there.
PyTorch's own forward is the same oneDNN call as direct's while oneDNN keeps its fast path (padding
up to ``ONEDNN_DILATED_MAX_PAD``); beyond, direct pads the input first. Timing these on a busy
machine sent some of them back to PyTorch's slow backward, hence a rule.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .backends.direct import ONEDNN_DILATED_MAX_PAD
from .problem import Problem


def dilated_cpu_rule(problem: Problem, pass_name: str) -> Optional[Tuple[str, str]]:
    """(implementation name, why) for a dilated CPU call, or None (half precision is measured)."""
    if problem.dtype not in (torch.float32, torch.float64):
        return None
    if pass_name != "fwd":
        return "direct", "dilated: PyTorch's dilated backward is a slow loop; direct runs it as a forward conv"
    if max(problem.ph, problem.pw) <= ONEDNN_DILATED_MAX_PAD:
        return "torch", f"dilated, padding at most {ONEDNN_DILATED_MAX_PAD}: PyTorch's own call is oneDNN's fast path"
    return "direct", f"dilated, padding over {ONEDNN_DILATED_MAX_PAD}: oneDNN is fast only on an input padded first"


__all__ = ["dilated_cpu_rule"]
