"""Embedded shape sets: the layers people train, by model family."""
from __future__ import annotations

import dataclasses
from typing import Dict, List

from .._checks import span


@dataclasses.dataclass(frozen=True)
class Shape:
    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    label: str = ""
    layers: int = 1  # stacked identical layers timed as one row (the paper's setting)
    dilation: int = 1

    @property
    def padding(self):
        return (span(self.kh, self.dilation) // 2, span(self.kw, self.dilation) // 2)

    def __str__(self) -> str:
        core = f"{self.n}x{self.c}x{self.h}x{self.w} k{self.kh}x{self.kw}"
        core += f" d{self.dilation}" if self.dilation > 1 else ""
        return core + (f" x{self.layers}" if self.layers > 1 else "")


# (C, H=W, k) per stage at 224 input (the published RepLKNet, UniRepLKNet and SLaK configurations)
STAGES = {
    "replknet31b": [(128, 56, 31), (256, 28, 29), (512, 14, 27), (1024, 7, 13)],
    "replknet31l": [(192, 56, 31), (384, 28, 29), (768, 14, 27), (1536, 7, 13)],
    "replknet_xl": [(384, 56, 27), (768, 28, 27), (1536, 14, 27), (3072, 7, 13)],
    # UniRepLKNet-S: 13x13 main kernels on every stage
    "unireplknet": [(96, 56, 13), (192, 28, 13), (384, 14, 13), (768, 7, 13)],
}
# SLaK-T: kernels 51, 49, 47, 13 decomposed into (k, 5) and (5, k), plus the 51x51 they replace
SLAK_STAGES = [(96, 56, 51), (192, 28, 49), (384, 14, 47), (768, 7, 13)]


def _stages(name: str, batches: List[int]) -> List[Shape]:
    return [Shape(n, c, hw, hw, k, k, f"{name} stage {i + 1}") for n in batches
            for i, (c, hw, k) in enumerate(STAGES[name])]


def model_shapes(name: str, batch: int) -> List[Shape]:
    """The large-kernel layers of a whole model (``--model``), one per stage."""
    return _stages(name, [batch])


def _slak(batches: List[int]) -> List[Shape]:
    shapes = []
    for n in batches:
        for i, (c, hw, k) in enumerate(SLAK_STAGES):
            label = f"slak stage {i + 1}"
            shapes += [Shape(n, c, hw, hw, k, 5, label), Shape(n, c, hw, hw, 5, k, label),
                       Shape(n, c, hw, hw, k, k, label)]
    return shapes


def _paper() -> List[Shape]:
    # RepLKNet paper, Table 1: 24 stacked layers on a (64, 384, R, R) input.
    return [Shape(64, 384, r, r, k, k, "paper table 1", layers=24) for r in (16, 32, 64)
            for k in (3, 7, 13, 17, 21, 27, 29, 31)]


# Kernels large enough that the fft implementation is the point: SLaK's merged 51x51 (and a 61x61
# at 64x64), PeLK's 101x101, at the batch sizes given (not the default ones)
VERY_LARGE = [Shape(1, 96, 56, 56, 51, 51, "slak merged 51x51"), Shape(2, 128, 64, 64, 61, 61, "61x61"),
              Shape(1, 64, 56, 56, 101, 101, "pelk 101x101"), Shape(1, 64, 64, 64, 101, 101, "pelk 101x101")]


def default_batches(device_type: str) -> List[int]:
    """A training batch and batch 1 on CUDA; batch 1 on CPU, where PyTorch's naive NCHW loop takes
    seconds a call at batch 4 and the default run must stay within two minutes on two cores."""
    return [64, 1] if device_type == "cuda" else [1]


def with_batches(shapes: List[Shape], batches: List[int]) -> List[Shape]:
    """Each distinct shape once per batch size in ``batches`` (batch-major, like the presets)."""
    unique = list(dict.fromkeys(dataclasses.replace(s, n=1) for s in shapes))
    return [dataclasses.replace(s, n=n) for n in batches for s in unique]


def preset(name: str, device_type: str) -> List[Shape]:
    """The shapes of a preset at its default batch sizes."""
    batches = default_batches(device_type)
    if name in STAGES:
        return _stages(name, batches)
    if name == "slak":
        return _slak(batches)
    if name == "verylarge":
        return list(VERY_LARGE)
    if name == "paper":
        shapes = _paper()
        if device_type != "cuda":  # the paper's full setting takes minutes a row on a CPU
            shapes = [dataclasses.replace(s, n=1, layers=1) for s in shapes if s.h <= 32]
        return shapes
    raise ValueError(f"preset: expected one of {', '.join(sorted(PRESETS))}, got {name!r}")


PRESETS: Dict[str, str] = {
    "replknet31b": "RepLKNet-31B stage shapes (default)",
    "replknet31l": "RepLKNet-31L stage shapes",
    "replknet_xl": "RepLKNet-XL stage shapes",
    "slak": "SLaK-T decomposed (k, 5) and (5, k) kernels and the k x k they replace",
    "unireplknet": "UniRepLKNet-S 13x13 stage shapes",
    "verylarge": "SLaK merged 51x51, 61x61 and PeLK 101x101 kernels (where fft wins)",
    "paper": "RepLKNet paper Table 1: 24 layers of (64, 384, R, R), k from 3 to 31",
}


def parse_shape(text: str) -> Shape:
    """N,C,H,W,kh,kw and optionally the dilation as a seventh field."""
    try:
        values = [int(v) for v in text.split(",")]
        if len(values) not in (6, 7):
            raise ValueError
    except ValueError:
        raise ValueError(f"--shape: expected N,C,H,W,kh,kw[,dilation] (six or seven integers), got {text!r}") from None
    if min(values) < 1:
        raise ValueError(f"--shape: expected positive sizes, got {text!r}")
    n, c, h, w, kh, kw = values[:6]
    return Shape(n, c, h, w, kh, kw, "custom", dilation=values[6] if len(values) == 7 else 1)
