"""``backend="torch"``: PyTorch's own convolution in the caller's layout and dtype (what
``nn.Conv2d`` runs), and what is known about where PyTorch's CPU path is slow (``rules``)."""
from typing import Tuple

from ..._checks import SUPPORTED_DTYPES
from ..implementation import Implementation
from .rules import ONEDNN_NCHW_MAX_SIDE, is_naive_loop
from .runner import TorchNativeRunner
from .runner3d import TorchNative3d

NAME = "torch"  # the ``backend=`` value that selects it


def entries() -> Tuple[Implementation, ...]:
    return (Implementation(
        NAME, NAME, TorchNativeRunner(), ("cpu", "cuda"), SUPPORTED_DTYPES, ("cpu", "cuda"),
        ranks=(2, 3), runner3d=TorchNative3d(),
        description="PyTorch's own convolution in the caller's layout and dtype (what nn.Conv2d runs)"),)


__all__ = ["NAME", "ONEDNN_NCHW_MAX_SIDE", "TorchNative3d", "TorchNativeRunner", "entries", "is_naive_loop"]
