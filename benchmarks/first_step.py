"""The first RepLKNet-31B training step against a steady one: what a user's first step pays for
the planner's measurements and the Triton tuning (docs/gpu-results.md, cold start).

    python benchmarks/first_step.py [--batch 64] [--steps 5] [--json PATH]

Builds the model (replk_ops layers), runs one training step under bf16 autocast (CUDA; fp32 on
CPU) and then --steps more, each timed by the wall clock after a device synchronize, and prints
the first step, the median steady step and their difference. Run it once with an empty tuning
cache (REPLK_OPS_CACHE_DIR pointing at an empty folder: cold) and again with the same folder
(warm): benchmarks/gpu_check.sh does both.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from replk_ops import cache
from replk_ops.models.replknet import replknet31b


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="steady steps after the first (default 5)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = torch.bfloat16 if device.type == "cuda" else None
    torch.manual_seed(0)
    model = replknet31b(num_classes=1000, drop_path_rate=0.0).to(device).train()
    images = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, 1000, (args.batch,), device=device)
    stored_before = sum(cache.entries().values())

    def step() -> float:
        _synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        model.zero_grad(set_to_none=True)
        _synchronize(device)
        return time.perf_counter() - start

    first = step()
    steady = statistics.median(step() for _ in range(args.steps))
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "batch": args.batch, "dtype": "bf16 autocast" if amp else "fp32", "first_step_s": round(first, 3),
              "steady_step_s": round(steady, 4), "first_minus_steady_s": round(first - steady, 3),
              "cache_entries_before": stored_before, "cache_dir": str(cache.directory())}
    print(f"first step {first:.2f} s, steady step {steady * 1e3:.1f} ms: the first costs {first - steady:.2f} s "
          f"more ({stored_before} tuning cache entries at the start, {cache.directory()})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
