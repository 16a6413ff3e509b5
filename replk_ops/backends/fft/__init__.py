"""``backend="fft"``: every pass as products of real FFTs (2-D or 3-D). ``runner`` runs the passes,
``transforms`` holds the transform sizes and crops, ``spectrum_cache`` keeps kernel spectra between
calls, ``thresholds`` says where "auto" considers fft."""
from typing import Tuple

from ..._checks import SUPPORTED_DTYPES
from ..implementation import Implementation
from .runner import FFTRunner
from .runner3d import FFT3d
from .thresholds import BACKWARD_MIN_TAPS, MIN_TAPS, auto_rejection, cpu_rule

NAME = "fft"  # the ``backend=`` value that selects it


def entries() -> Tuple[Implementation, ...]:
    return (Implementation(
        NAME, NAME, FFTRunner(), ("cpu", "cuda"), SUPPORTED_DTYPES, ("cpu", "cuda"), auto_rule=auto_rejection,
        ranks=(2, 3), runner3d=FFT3d(),
        description="products of real FFTs (2-D or 3-D) (torch.fft); its cost per pixel hardly grows with the kernel"),)


__all__ = ["NAME", "BACKWARD_MIN_TAPS", "MIN_TAPS", "FFT3d", "FFTRunner", "auto_rejection", "cpu_rule", "entries"]
