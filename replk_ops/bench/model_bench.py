"""Model-level comparison: a RepLKNet training step and inference throughput with the large
depthwise convs on nn.Conv2d versus on replk_ops, same weights, same input.

The large convs' share of a step is measured directly: their calls are recorded during a step and
replayed on their own (forward and backward, same shapes, same autocast), then timed like the step.
Subtracting a separately timed network without them would mix two measurements taken under
different load and can come out negative."""
from __future__ import annotations

import copy
from typing import Callable, List

import torch
import torch.nn.functional as F
from torch import nn

from .. import models
from ..modules import LargeKernelDWConv2d
from .console import RIGHT, print_table
from .timing import cpu_clock, time_cpu, time_cuda


def _with_large_convs_replaced(model: nn.Module, replacement) -> nn.Module:
    """A copy of ``model`` with each LargeKernelDWConv2d ``child`` replaced by ``replacement(child)``."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LargeKernelDWConv2d):
                setattr(parent, name, replacement(child))
    return model


# name -> factory(num_classes=..., drop_path_rate=...) of the networks --model can time
MODEL_FACTORIES = {"replknet31b": models.replknet31b, "replknet31l": models.replknet31l,
                   "replknet_xl": models.replknet_xl}


class PlainLargeConv(nn.Conv2d):
    """nn.Conv2d's own forward, standing in for a LargeKernelDWConv2d (so it can be found again)."""


def _plain_conv2d(child: LargeKernelDWConv2d) -> nn.Conv2d:
    conv = PlainLargeConv(child.in_channels, child.out_channels, child.kernel_size, padding=child.padding,
                          groups=child.groups, bias=child.bias is not None,
                          device=child.weight.device, dtype=child.weight.dtype)
    conv.load_state_dict(child.state_dict())
    return conv


def _on_conv2d(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose LargeKernelDWConv2d layers are plain nn.Conv2d."""
    return _with_large_convs_replaced(model, _plain_conv2d)


def _large_convs(model: nn.Module) -> List[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (LargeKernelDWConv2d, PlainLargeConv))]


def large_convs_only(model: nn.Module, step: Callable[[], None], autocast) -> Callable[[], None]:
    """A function that runs forward and backward of only ``model``'s large convs, on inputs of the
    shapes and dtypes they received during ``step``."""
    recorded = []
    hooks = [m.register_forward_pre_hook(lambda m, args: recorded.append((m, args[0].shape, args[0].dtype)))
             for m in _large_convs(model)]
    try:
        step()
    finally:
        for hook in hooks:
            hook.remove()
    if not recorded:
        raise ValueError(f"model: expected LargeKernelDWConv2d layers, found none in {type(model).__name__}")
    inputs = [torch.randn(shape, dtype=dtype, device=m.weight.device).requires_grad_() for m, shape, dtype in recorded]
    with autocast():
        grads = [torch.randn_like(m(x)) for (m, _, _), x in zip(recorded, inputs)]

    def run():
        with autocast():
            outs = [m(x) for (m, _, _), x in zip(recorded, inputs)]
        torch.autograd.backward(outs, grads)
        for m, _, _ in recorded:  # like the step's zero_grad(set_to_none=True)
            m.zero_grad(set_to_none=True)
        for x in inputs:
            x.grad = None

    return run


def run_model(name: str, device: torch.device, batch: int, image_size: int, budget_s: float) -> List[dict]:
    factory = MODEL_FACTORIES[name]
    torch.manual_seed(0)
    ours = factory(num_classes=1000, drop_path_rate=0.0).to(device)
    variants = {"nn.Conv2d": _on_conv2d(ours), "replk_ops": ours}
    amp = torch.bfloat16 if device.type == "cuda" else None  # CPU: fp32 (bf16 autocast is slow there)
    images = torch.randn(batch, 3, image_size, image_size, device=device)
    labels = torch.randint(0, 1000, (batch,), device=device)
    clock = cpu_clock(torch.get_num_threads())
    timer = ((lambda fn: time_cuda(fn, budget_s * 1e3)) if device.type == "cuda"
             else (lambda fn: time_cpu(fn, budget_s, clock)))
    rows = []

    def autocast():
        return torch.autocast(device.type, dtype=amp, enabled=amp is not None)

    def train_step(model: nn.Module) -> Callable[[], None]:
        model.train()

        def step():
            with autocast():
                loss = F.cross_entropy(model(images), labels)
            loss.backward()
            model.zero_grad(set_to_none=True)

        return step

    for label, model in variants.items():
        step = train_step(model)
        train_ms = timer(step)[0]
        convs_ms = timer(large_convs_only(model, step, autocast))[0]
        infer = copy.deepcopy(model).eval()
        if hasattr(infer, "structural_reparam"):
            infer.structural_reparam()
        infer = _on_conv2d(infer) if label == "nn.Conv2d" else infer

        def forward(model=infer):
            with torch.no_grad(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                model(images)

        infer_ms = timer(forward)[0]
        rows.append({"model": name, "convs": label, "batch": batch, "image_size": image_size,
                     "amp": str(amp) if amp else "fp32", "train_step_ms": train_ms,
                     "large_conv_ms": convs_ms, "large_conv_share": convs_ms / train_ms,
                     "inference_images_per_s": batch / (infer_ms / 1e3)})
    base = rows[0]
    for row in rows:
        row["train_speedup"] = base["train_step_ms"] / row["train_step_ms"]
        row["inference_speedup"] = row["inference_images_per_s"] / base["inference_images_per_s"]
    return rows


def print_rows(rows: List[dict]) -> None:
    columns = ("model", "convs", "batch", "image", "precision", "train step ms", "x", "in large dw convs",
               "inference img/s", "x")
    cells = [[r["model"], r["convs"], str(r["batch"]), str(r["image_size"]), r["amp"], f"{r['train_step_ms']:.1f}",
              f"{r['train_speedup']:.2f}", f"{r['large_conv_ms']:.1f} ms ({100 * r['large_conv_share']:.0f}%)",
              f"{r['inference_images_per_s']:.1f}", f"{r['inference_speedup']:.2f}"] for r in rows]
    print_table(columns, [RIGHT] * len(columns), cells,
                title="model level (same weights, same input; inference after structural_reparam; "
                      "large dw convs: their forward+backward replayed alone)")
