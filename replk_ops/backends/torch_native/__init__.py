"""``backend="torch"``: PyTorch's own convolution in the caller's layout and dtype."""
from .runner import TorchNativeBackend

__all__ = ["TorchNativeBackend"]
