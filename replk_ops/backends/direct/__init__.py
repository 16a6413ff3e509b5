"""``backend="direct"``: every pass as a forward convolution on PyTorch's fast paths."""
from .runner import ONEDNN_DILATED_MAX_PAD, DirectBackend

__all__ = ["ONEDNN_DILATED_MAX_PAD", "DirectBackend"]
