"""Dilated depthwise convs on CPU: replk_ops against nn.Conv2d, and the targets they must meet.

    python benchmarks/dilated_branches.py [--unireplknet DIR] [--json out.json]

- The five dilated branches of a 13x13 UniRepLKNet block (kernel/dilation 5/1, 7/2, 3/3, 3/4, 3/5),
  forward+backward of their sum, at 1x80x28x28 and 1x160x14x14: as nn.Conv2d (NCHW and
  channels_last) and as converted modules on the NCHW input (every branch converted, and as
  ``replk_ops.convert``'s default leaves them: the 5x5 branch spans 5 < 7 and stays nn.Conv2d).
  Targets: >= 3x nn.Conv2d NCHW and >= 1.5x nn.Conv2d channels_last.
- LSKNet's 7x7 dilation 3 at 1x64x56x56, forward+backward: >= 2x nn.Conv2d NCHW.
- With ``--unireplknet DIR`` (a directory holding the official ``unireplknet.py``, which is not
  part of this repository): one training step of UniRepLKNet-A (and -T with ``--tiny``) at batch 1,
  224x224, with nn.Conv2d against ``compat.install()`` + ``replk_ops.convert``. Target: >= 1.45x.

One torch thread, thread CPU time, the variants interleaved round by round (alternating which runs
first); each figure is the median over rounds, each ratio the median of the per-round ratios. The
first call of each variant (the planner's measurements) is left out.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
from typing import Callable, Dict

import torch
from torch import nn

import replk_ops
from replk_ops.bench.timing import interleaved_samples

ROUNDS = 9
UNIREPLKNET_13 = ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5))


class Branches(nn.Module):
    """The sum of parallel depthwise convs (kernel, dilation) on one input, each keeping the map."""

    def __init__(self, channels: int, branches):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, k, padding=((k - 1) * d + 1) // 2, dilation=d, groups=channels, bias=False)
            for k, d in branches)

    def forward(self, x):
        out = self.convs[0](x)
        for conv in self.convs[1:]:
            out = out + conv(x)
        return out


def interleaved(variants: Dict[str, Callable[[], object]], rounds: int = ROUNDS) -> Dict[str, list]:
    """Thread CPU seconds per call of each variant, one sample per round, in turns (the bench's
    interleaved sampling, exactly ``rounds`` rounds)."""
    for fn in variants.values():
        fn()  # the first call plans (and measures) and builds oneDNN primitives
    samples = interleaved_samples(variants, budget_s=0.0, wall_cap_s=math.inf, min_samples=rounds)
    return {name: [ms / 1e3 for ms in values] for name, values in samples.items()}


def ratio(samples, slow: str, fast: str) -> float:
    return statistics.median(a / b for a, b in zip(samples[slow], samples[fast]))


def train_step(module: nn.Module, x: torch.Tensor):
    x = x.detach().requires_grad_()

    def step():
        out = module(x)
        out.backward(torch.ones_like(out))
        module.zero_grad(set_to_none=True)
        x.grad = None
    return step


def _report(title: str, samples, baseline_pairs, results: dict) -> None:
    print(title)
    for name, values in samples.items():
        print(f"  {name:<36} {statistics.median(values) * 1e3:8.3f} ms  (min {min(values) * 1e3:.3f})")
    for slow, fast, target in baseline_pairs:
        r = ratio(samples, slow, fast)
        verdict = "" if target is None else (" (target >= %.2fx: %s)" % (target, "met" if r >= target else "MISSED"))
        print(f"  {fast} vs {slow}: {r:.2f}x{verdict}")
        results.setdefault(title, {})[f"{fast} vs {slow}"] = r
    results.setdefault(title, {})["ms"] = {k: statistics.median(v) * 1e3 for k, v in samples.items()}


def branches_rows(results: dict) -> None:
    for c, hw in ((80, 28), (160, 14)):
        torch.manual_seed(0)
        native = Branches(c, UNIREPLKNET_13)
        converted_all = copy.deepcopy(native)
        replk_ops.convert(converted_all, min_kernel_size=1)
        converted_default = copy.deepcopy(native)
        replk_ops.convert(converted_default)
        x = torch.randn(1, c, hw, hw)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        samples = interleaved({
            "nn.Conv2d NCHW": train_step(native, x),
            "nn.Conv2d channels_last": train_step(native, x_cl),
            "replk_ops, all five converted": train_step(converted_all, x),
            "replk_ops, convert() default": train_step(converted_default, x),
            "replk_ops channels_last, all five": train_step(converted_all, x_cl),
        })
        _report(f"UniRepLKNet 13x13 dilated branches, 1x{c}x{hw}x{hw}, fwd+bwd", samples, [
            ("nn.Conv2d NCHW", "replk_ops, all five converted", 3.0),
            ("nn.Conv2d channels_last", "replk_ops, all five converted", 1.5),
            ("nn.Conv2d NCHW", "replk_ops, convert() default", None),
            ("nn.Conv2d channels_last", "replk_ops, convert() default", None),
            ("nn.Conv2d channels_last", "replk_ops channels_last, all five", None),
        ], results)


def lsknet_row(results: dict) -> None:
    torch.manual_seed(0)
    native = nn.Conv2d(64, 64, 7, padding=9, dilation=3, groups=64)
    fast = replk_ops.LargeKernelDWConv2d.from_conv2d(copy.deepcopy(native))
    x = torch.randn(1, 64, 56, 56)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    samples = interleaved({
        "nn.Conv2d NCHW": train_step(native, x),
        "nn.Conv2d channels_last": train_step(native, x_cl),
        "replk_ops NCHW": train_step(fast, x),
        "replk_ops channels_last": train_step(fast, x_cl),
    }, rounds=7)
    _report("LSKNet 7x7 dilation 3, 1x64x56x56, fwd+bwd", samples, [
        ("nn.Conv2d NCHW", "replk_ops NCHW", 2.0),
        ("nn.Conv2d channels_last", "replk_ops channels_last", 0.95),
    ], results)


def _official_variants(unireplknet, name: str) -> Dict[str, nn.Module]:
    import replk_ops.compat

    torch.manual_seed(0)
    build = getattr(unireplknet, name)
    native = build(num_classes=1000, attempt_use_lk_impl=False)
    replk_ops.compat.install()
    variants = {"nn.Conv2d": native}
    for label, min_size in (("compat.install()", None), ("compat + convert()", 7),
                            ("compat + convert(min_kernel_size=5)", 5), ("compat + convert(min_kernel_size=3)", 3)):
        model = build(num_classes=1000)
        model.load_state_dict(native.state_dict())
        if min_size is not None:
            replk_ops.convert(model, min_kernel_size=min_size)
        variants[label] = model
    return variants


def unireplknet_rows(directory: str, names, results: dict) -> None:
    """The official model's training step: with nn.Conv2d everywhere, after ``compat.install()``
    alone (its 13x13 convs on replk_ops), and after ``replk_ops.convert`` too (default; with
    ``min_kernel_size=5``, which also takes the 5x5 branches; with 3, every depthwise conv)."""
    import contextlib
    import io

    sys.path.insert(0, directory)
    for name in names:
        with contextlib.redirect_stdout(io.StringIO()):  # the official code prints while it builds
            import unireplknet
            variants = _official_variants(unireplknet, name)
        x = torch.randn(1, 3, 224, 224)
        samples = interleaved({label: train_step(model, x) for label, model in variants.items()}, rounds=5)
        _report(f"official {name}, batch 1, 224x224, training step", samples,
                [("nn.Conv2d", "compat.install()", None), ("nn.Conv2d", "compat + convert()", 1.45),
                 ("nn.Conv2d", "compat + convert(min_kernel_size=5)", 1.45),
                 ("nn.Conv2d", "compat + convert(min_kernel_size=3)", 1.45)], results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unireplknet", metavar="DIR", help="a directory holding the official unireplknet.py")
    parser.add_argument("--tiny", action="store_true", help="also UniRepLKNet-T (slower)")
    parser.add_argument("--only-models", action="store_true", help="only the official models' steps")
    parser.add_argument("--json", help="write the ratios here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results: dict = {"torch": torch.__version__}
    if not args.only_models:
        branches_rows(results)
        lsknet_row(results)
    if args.unireplknet:
        names = ["unireplknet_a"] + (["unireplknet_t"] if args.tiny else [])
        unireplknet_rows(args.unireplknet, names, results)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
