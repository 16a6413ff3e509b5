"""The implementations of the three passes, one module per backend: ``torch_native`` (PyTorch's
own convolution in the caller's layout), ``direct`` (every pass as a forward convolution on
PyTorch's fast paths), ``triton`` and ``cuda``. What each can run, and under which name, is
registered once in ``replk_ops.catalog``; which one runs a call is ``replk_ops.planner``'s choice.
"""
