"""Where PyTorch's own CPU convolution is slow: an NCHW depthwise conv reaches oneDNN only while the
kernel is at most ``ONEDNN_NCHW_MAX_SIDE`` wide; wider, it runs a naive loop."""
from __future__ import annotations

from ..._layout import NCHW
from ...problem import Problem

# 1x256x14x14 k15: 3.4 ms NCHW against 0.18 ms through channels_last; 1x96x56x56 5x51: 52 ms
# against 3.6 ms, while 51x5 takes 2.2 ms either way.
ONEDNN_NCHW_MAX_SIDE = 13


def is_naive_loop(problem: Problem, pass_name: str) -> bool:
    """Whether PyTorch's own CPU call for this pass is its naive NCHW loop (far too slow to time)."""
    if problem.layout != NCHW:
        return False
    if pass_name == "fwd":
        return problem.kw > ONEDNN_NCHW_MAX_SIDE
    return min(problem.kh, problem.kw) > ONEDNN_NCHW_MAX_SIDE
