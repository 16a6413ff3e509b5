"""Triton kernels for the three passes; imported only when Triton is (this file itself imports
neither Triton nor a kernel, so a backend may read the facts below without Triton installed).

Layout (docs/design.md, "Row-Toeplitz products" and "Weight gradient as GEMM plus diagonal sums"):
``fwd.py`` the forward and the input gradient (the forward with the kernel rotated), kernels and
launchers; ``bwd_weight.py`` the weight gradient, kernel and launcher; ``dense.py`` the dense
per-channel GEMM for kernels that cover the map; ``common.py`` what they share; ``tuning.py`` the
catalogue of variants the autotuner, the tests and the benchmarks all read. ``launch.py`` is the
entry points a backend calls: fwd, bwd_input, bwd_weight."""
import torch

# BK = next_pow2(BN + k - 1) stays <= 128 with BN = 32 (Hopper's shared memory)
MAX_KERNEL = 63
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
