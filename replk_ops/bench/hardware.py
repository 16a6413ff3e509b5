"""Peak rates of the machine, for "% of the hardware bound".

Only datasheet figures are used as bounds. A probe (a matmul, a copy) is taken under whatever load
the machine has and is no upper bound: kernels would show above 100% of it. So a GPU missing from
the table gets its probe figures reported for information, and a CPU gets none; their rows say
"n/a" under "% bound"."""
from __future__ import annotations

import dataclasses
import time
from typing import Optional

import torch


@dataclasses.dataclass
class Peaks:
    name: str
    fma_tflops: Optional[float]     # FP32 on CUDA cores
    half2_tflops: Optional[float]
    tensor_tflops: Optional[float]  # dense fp16/bf16 tensor cores
    bandwidth_tbs: Optional[float]
    source: str  # "datasheet" for a bound; anything else is for information only

    @property
    def is_bound(self) -> bool:
        return self.source == "datasheet"


# Dense, non-sparse figures from the vendors' datasheets.
KNOWN_GPUS = [
    ("H200", Peaks("H200", 66.9, 133.8, 989.0, 4.8, "datasheet")),
    ("H100 PCIe", Peaks("H100 PCIe", 51.2, 102.4, 756.0, 2.0, "datasheet")),
    ("H100", Peaks("H100 SXM", 66.9, 133.8, 989.0, 3.35, "datasheet")),
    ("A100", Peaks("A100", 19.5, 78.0, 312.0, 2.0, "datasheet")),
    ("L40S", Peaks("L40S", 91.6, 91.6, 362.0, 0.864, "datasheet")),
    ("4090", Peaks("RTX 4090", 82.6, 82.6, 165.2, 1.008, "datasheet")),
]


def _probe_matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    size = 2048
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12


def _probe_bandwidth_tbs(device: torch.device) -> float:
    src = torch.empty(64 * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        dst.copy_(src)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 / best / 1e12


def peaks_for(device: torch.device) -> Peaks:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peaks in KNOWN_GPUS:
            if key in name:
                return peaks
        fp32 = _probe_matmul_tflops(device, torch.float32)
        half = _probe_matmul_tflops(device, torch.float16)
        return Peaks(name, fp32, None, half, _probe_bandwidth_tbs(device), "measured probe (GPU not in the table)")
    return Peaks("CPU", None, None, None, None, "none (no datasheet figures for CPUs)")


def compute_peak(peaks: Peaks, dtype: torch.dtype) -> Optional[float]:
    if dtype in (torch.float16, torch.bfloat16) and peaks.tensor_tflops:
        return peaks.tensor_tflops
    return peaks.fma_tflops


def bounds_line(peaks: Peaks) -> str:
    """One line saying which bounds "% bound" uses, or that there are none."""
    if not peaks.is_bound:
        probe = ""
        if peaks.fma_tflops is not None:
            probe = (f"; probed fp32 {peaks.fma_tflops:.2f} TFLOP/s, fp16 {peaks.tensor_tflops:.2f} TFLOP/s, "
                     f"{peaks.bandwidth_tbs:.3f} TB/s (not bounds: taken under the current load)")
        return f"bounds: {peaks.source}, so % bound is n/a{probe}"
    tensor = f"tensor cores {peaks.tensor_tflops:.0f} TFLOP/s" if peaks.tensor_tflops else "no tensor cores"
    return (f"bounds ({peaks.source}, {peaks.name}): fp32 {peaks.fma_tflops:.1f} TFLOP/s, {tensor}, "
            f"{peaks.bandwidth_tbs:.2f} TB/s")
