import os

import pytest

# Triton kernels run on CPU through the interpreter when no GPU is present; the variable must be
# set before triton is first imported.
try:
    import torch

    _HAS_GPU = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    _HAS_GPU = False
if not _HAS_GPU:
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Tests choose backends explicitly; a user's override must not leak into them.
os.environ.pop("REPLK_OPS_BACKEND", None)


def pytest_collection_modifyitems(config, items):
    if _HAS_GPU:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
