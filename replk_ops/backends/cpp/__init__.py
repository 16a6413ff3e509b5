"""``backend="cpp"``: the compiled CPU kernels ``replk_ops._cpu`` (csrc/cpu): ``loader`` loads them
and says why where it cannot, ``runner`` runs the passes, ``rules`` says where "auto" uses them."""
from typing import Tuple

from ..._checks import SUPPORTED_DTYPES
from ..implementation import Implementation
from .loader import UNAVAILABLE, instruction_set, note
from .rules import MAX_UNDILATED_SIDE, NCHW_FORWARD_MAX_SIDE, auto_rejection
from .runner import CppRunner
from .runner3d import Cpp3d

NAME = "cpp"  # the ``backend=`` value that selects it


def entries() -> Tuple[Implementation, ...]:
    return (Implementation(
        NAME, NAME, CppRunner(), ("cpu",), SUPPORTED_DTYPES, ("cpu",), auto_rule=auto_rejection,
        ranks=(2, 3), runner3d=Cpp3d(),
        description="compiled C++ loops over zero-padded planes (replk_ops._cpu), any dilation: the CPU route for "
                    "dilated and small kernels"),)


__all__ = ["NAME", "MAX_UNDILATED_SIDE", "NCHW_FORWARD_MAX_SIDE", "UNAVAILABLE", "Cpp3d", "CppRunner", "auto_rejection",
           "entries", "instruction_set", "note"]
