"""Where "auto" uses the compiled CPU kernels (docs/design.md, "Dilation"): every dilated CPU pass
(``replk_ops.cpu_rules``), NCHW forwards up to ``NCHW_FORWARD_MAX_SIDE`` by rule, and timed
against the others for undilated kernels up to ``MAX_UNDILATED_SIDE``; beyond, oneDNN's routes are
faster (its loops run over the whole padded plane, which a kernel as large as the map mostly is)."""
from __future__ import annotations

from typing import Optional

from ...problem import Problem

# 1x96x56x56 7x7: cpp's weight gradient 1.8 ms against direct's 3.6 ms; 1x512x14x14 27x27: 24 ms
# against 17 ms, and its forward 23 ms against 6.3 ms.
MAX_UNDILATED_SIDE = 7
# NCHW forward, cpp against PyTorch's own oneDNN call with other work between calls (cold caches):
# 3x3 and 5x5 1.0 to 3.0 times faster at every map and batch measured (7x7 to 112x112, batch 1 to
# 32); 7x7 0.4 to 2.8 times, so that is left to PyTorch's call.
NCHW_FORWARD_MAX_SIDE = 5


def auto_rejection(problem: Problem) -> Optional[str]:
    """Why "auto" leaves a problem the compiled CPU kernels can run to the others, or None."""
    if not problem.dilated and max(problem.kh, problem.kw) > MAX_UNDILATED_SIDE:
        return (f"available, but \"auto\" leaves undilated kernels over {MAX_UNDILATED_SIDE} wide to the "
                "oneDNN and fft routes, faster there")
    return None
