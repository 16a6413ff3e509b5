"""The entry points a backend calls: the three passes and the largest kernel they take. Each
takes an optional keyword-only ``variant`` (tuning.ForwardVariant for fwd and bwd_input,
tuning.WeightGradVariant for bwd_weight); None means the tuned or heuristic one."""
from . import MAX_KERNEL
from .bwd_weight import bwd_weight
from .fwd import bwd_input, fwd

__all__ = ["MAX_KERNEL", "bwd_input", "bwd_weight", "fwd"]
