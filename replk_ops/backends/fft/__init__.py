"""``backend="fft"``: every pass as products of 2-D real FFTs."""
from .runner import FFTBackend

__all__ = ["FFTBackend"]
