"""A dilated 7x7 layer (1x80x28x28, dilation 2) side by side: nn.Conv2d, LargeKernelDWConv2d with
"auto" (PyTorch's forward, the compiled backward) and with backend="cpp" (the compiled kernels
throughout), inference and training step, one torch thread, three interleaved groups.

    python benchmarks/results/2026-12-04_cpu_eager/dilated_step_ab.py
"""
import torch
torch.set_num_threads(1)
import replk_ops
from replk_ops.bench.timing import time_interleaved
from replk_ops.bench.overhead import training_steps
c, hw = 80, 28
conv = torch.nn.Conv2d(c, c, 7, padding=6, dilation=2, groups=c)
auto = replk_ops.LargeKernelDWConv2d.from_conv2d(conv)
cpp = replk_ops.LargeKernelDWConv2d.from_conv2d(conv, backend="cpp")
x = torch.randn(1, c, hw, hw); g = torch.randn(1, c, hw, hw)
fns = {}
for name, m in (("conv", conv), ("auto", auto), ("cpp", cpp)):
    inf, tr = training_steps(m, x, g)
    fns[name + " train"] = tr
    fns[name + " inf"] = inf
for f in fns.values(): f(); f()
print(str(replk_ops.explain(x, conv.weight, dilation=2)).splitlines()[1])
for r in range(3):
    t = time_interleaved(fns, 1.0)
    print({n: round(v.median_ms, 3) for n, v in t.items()})
