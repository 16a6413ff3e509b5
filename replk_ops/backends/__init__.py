"""The backends, one package each: ``torch_native`` (``backend="torch"``: PyTorch's own convolution
in the caller's layout), ``direct`` (every pass as a forward convolution on PyTorch's fast paths),
``cpp`` (the compiled CPU kernels), ``fft`` (products of real FFTs), ``triton`` (Triton
tensor-core kernels) and ``cuda`` (the compiled CUDA extension). Each package has its runner
(a ``base.PassRunner``), its rules and constants, and its catalogue entries (``entries()``, of
``implementation.Implementation``); ``space_to_batch`` runs the undilated kernels (Triton, CUDA)
for any dilation. ``replk_ops.catalog`` lists the packages in "auto"'s priority order; which
implementation runs a call is ``replk_ops.planner``'s choice.
"""
