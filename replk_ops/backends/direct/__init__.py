"""``backend="direct"``: every pass as a forward convolution on PyTorch's fast paths
(``ForwardConvRunner``). Not to be confused with the CUDA extension's CUDA-core algos, whose
public names are also "direct" and "direct_rows" (``cuda:direct``)."""
from typing import Tuple

from ..._checks import SUPPORTED_DTYPES
from ..implementation import Implementation
from .runner import ONEDNN_DILATED_MAX_PAD, ForwardConvRunner, input_grad_as_forward
from .runner3d import Direct3d, input_grad_as_forward3d

NAME = "direct"  # the ``backend=`` value that selects it


def entries() -> Tuple[Implementation, ...]:
    return (Implementation(
        NAME, NAME, ForwardConvRunner(), ("cpu", "cuda"), SUPPORTED_DTYPES, ("cpu",),
        ranks=(2, 3), runner3d=Direct3d(),
        description="every pass as a float32 forward convolution, on CPU through channels_last (oneDNN)"),)


__all__ = ["NAME", "ONEDNN_DILATED_MAX_PAD", "Direct3d", "ForwardConvRunner", "entries", "input_grad_as_forward",
           "input_grad_as_forward3d"]
