"""Model-level comparison: a RepLKNet training step and inference throughput with the large
depthwise convs on nn.Conv2d versus on replk_ops, same weights, same input."""
from __future__ import annotations

import copy
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from ..modules import LargeKernelDWConv2d
from .timing import time_cpu, time_cuda


def _with_large_convs_replaced(model: nn.Module, replacement) -> nn.Module:
    """A copy of ``model`` with each LargeKernelDWConv2d ``child`` replaced by ``replacement(child)``."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LargeKernelDWConv2d):
                setattr(parent, name, replacement(child))
    return model


def _plain_conv2d(child: LargeKernelDWConv2d) -> nn.Conv2d:
    conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, padding=child.padding,
                     groups=child.groups, bias=child.bias is not None,
                     device=child.weight.device, dtype=child.weight.dtype)
    conv.load_state_dict(child.state_dict())
    return conv


def _on_conv2d(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose LargeKernelDWConv2d layers are plain nn.Conv2d."""
    return _with_large_convs_replaced(model, _plain_conv2d)


class _SkippedConv(nn.Module):
    """Stands in for a "same"-padded depthwise conv when timing the network without it."""

    def forward(self, x):
        return x


def _without_large_convs(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every LargeKernelDWConv2d replaced by the identity: the step time
    of this copy, subtracted from the full one, is the time spent in those convs."""
    return _with_large_convs_replaced(model, lambda child: _SkippedConv())


def run_model(name: str, device: torch.device, batch: int, image_size: int, budget_s: float) -> List[dict]:
    from .. import models

    factory = {"replknet31b": models.replknet31b, "replknet31l": models.replknet31l,
               "replknet_xl": models.replknet_xl}[name]
    torch.manual_seed(0)
    ours = factory(num_classes=1000, drop_path_rate=0.0).to(device)
    variants = {"nn.Conv2d": _on_conv2d(ours), "replk_ops": ours}
    amp = torch.bfloat16 if device.type == "cuda" else None  # CPU: fp32 (bf16 autocast is slow there)
    images = torch.randn(batch, 3, image_size, image_size, device=device)
    labels = torch.randint(0, 1000, (batch,), device=device)
    timer = (lambda fn: time_cuda(fn, budget_s * 1e3)) if device.type == "cuda" else (lambda fn: time_cpu(fn, budget_s))
    rows = []

    def train_step_ms(model: nn.Module) -> float:
        model.train()

        def step():
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = F.cross_entropy(model(images), labels)
            loss.backward()
            model.zero_grad(set_to_none=True)

        return timer(step)[0]

    # the rest of the network, timed once: the difference from a full step is the large convs' time
    rest_ms = train_step_ms(_without_large_convs(ours))
    for label, model in variants.items():
        train_ms = train_step_ms(model)
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
                     "large_conv_share": max(0.0, 1.0 - rest_ms / train_ms),
                     "inference_images_per_s": batch / (infer_ms / 1e3)})
    base = rows[0]
    for row in rows:
        row["train_speedup"] = base["train_step_ms"] / row["train_step_ms"]
        row["inference_speedup"] = row["inference_images_per_s"] / base["inference_images_per_s"]
    return rows


def print_rows(rows: List[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="model level (same weights, same input; inference after structural_reparam)")
    for col in ("model", "convs", "batch", "image", "precision", "train step ms", "x", "in large dw convs",
                "inference img/s", "x"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["model"], r["convs"], str(r["batch"]), str(r["image_size"]), r["amp"],
                      f"{r['train_step_ms']:.1f}", f"{r['train_speedup']:.2f}", f"{100 * r['large_conv_share']:.0f}%",
                      f"{r['inference_images_per_s']:.1f}", f"{r['inference_speedup']:.2f}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)
