"""Triton kernels for the three passes; imported only when Triton is."""
