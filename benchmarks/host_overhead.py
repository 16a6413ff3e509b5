"""Where a small layer's training step spends its host time (GPU only).

    python benchmarks/host_overhead.py [--shape 1x1024x7x7 --kernel 13]

At batch 1 on small maps the step is bound by the host, not the GPU. This times one fwd+bwd of
nn.Conv2d and of each replk_ops backend by wall clock (synchronized, many repetitions), then
prints torch.profiler's CPU-side table for replk_ops' `cuda` backend: the functions and ops that
take the time.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import replk_ops


def step(forward, x, w, b, dy):
    x = x.detach().requires_grad_()
    w = w.detach().requires_grad_()
    b = b.detach().requires_grad_()
    forward(x, w, b).backward(dy)


def replk_forward(backend: str, pad: int):
    return lambda xs, ws, bs: replk_ops.dwconv2d(xs, ws, bs, pad, backend=backend)


def wall_us(fn, repeats: int) -> float:
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="1x1024x7x7", help="NxCxHxW")
    parser.add_argument("--kernel", type=int, default=13)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args(argv)
    n, c, h, w = map(int, args.shape.split("x"))
    k, pad, dtype = args.kernel, args.kernel // 2, getattr(torch, args.dtype)
    x = torch.randn(n, c, h, w, device="cuda", dtype=dtype)
    weight = torch.randn(c, 1, k, k, device="cuda", dtype=dtype)
    bias = torch.randn(c, device="cuda", dtype=dtype)
    dy = torch.randn(n, c, h, w, device="cuda", dtype=dtype)
    variants = {"nn.Conv2d": lambda xs, ws, bs: F.conv2d(xs, ws, bs, padding=pad, groups=c)}
    for backend in replk_ops.available_backends(torch.device("cuda")):
        variants[f"replk_ops {backend}"] = replk_forward(backend, pad)
    print(f"{args.shape} k{k} {args.dtype}: wall time of one fwd+bwd (us, host and GPU together)")
    for name, forward in variants.items():
        print(f"  {name:>20}: {wall_us(lambda: step(forward, x, weight, bias, dy), args.repeats):8.1f}")
    if "replk_ops cuda" in variants:
        forward = variants["replk_ops cuda"]
        with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
            for _ in range(50):
                step(forward, x, weight, bias, dy)
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
