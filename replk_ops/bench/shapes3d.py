"""3-D bench shapes: the depthwise layers of 3-D medical segmentation networks."""
from __future__ import annotations

import dataclasses
from typing import Dict, List

from .shapes import default_batches


@dataclasses.dataclass(frozen=True)
class Shape3d:
    n: int
    c: int
    size: int   # D = H = W
    k: int      # kd = kh = kw
    label: str = ""

    @property
    def padding(self):
        return (self.k // 2,) * 3

    def __str__(self) -> str:
        return f"{self.n}x{self.c}x{self.size}^3 k{self.k}^3"


# (C, map side, kernel) per preset. Maps are those of 3D UX-Net's first two stages at a 64^3 and
# 48^3 patch (its published 96^3 patch gives 48^3 and 24^3: minutes a call for PyTorch's backward
# on one CPU thread), RepUX-Net's 21^3 kernel, MedNeXt's 3^3 and 5^3 at its first stages' widths.
PRESETS_3D: Dict[str, List[tuple]] = {
    "uxnet3d": [(48, 32, 7), (96, 24, 7), (48, 32, 13), (96, 24, 13)],
    "repuxnet": [(32, 32, 21), (48, 48, 21)],
    "mednext": [(32, 64, 3), (64, 32, 3), (32, 64, 5), (64, 32, 5)],
}
DESCRIPTIONS_3D = {
    "uxnet3d": "3D UX-Net 7^3 and 13^3 depthwise convs at 48ch 32^3 and 96ch 24^3",
    "repuxnet": "RepUX-Net 21^3 depthwise convs at 32ch 32^3 and 48ch 48^3",
    "mednext": "MedNeXt 3^3 and 5^3 depthwise convs at 32ch 64^3 and 64ch 32^3",
}


def default_batches_3d(device_type: str) -> List[int]:
    """Batch 1 on CPU (PyTorch's conv3d backward takes seconds to minutes a call there), 2 on CUDA."""
    return [2] if device_type == "cuda" else default_batches(device_type)


def preset3d(name: str, device_type: str, batches=None) -> List[Shape3d]:
    return [Shape3d(n, c, size, k, name) for n in (batches or default_batches_3d(device_type))
            for c, size, k in PRESETS_3D[name]]


__all__ = ["Shape3d", "PRESETS_3D", "DESCRIPTIONS_3D", "preset3d", "default_batches_3d"]
