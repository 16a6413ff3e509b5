"""Peak rates of the machine, for "% of the hardware bound"."""
from __future__ import annotations

import dataclasses
import time
from typing import Optional

import torch


@dataclasses.dataclass
class Peaks:
    name: str
    fma_tflops: float          # FP32 on CUDA cores (or the measured CPU fp32 rate)
    half2_tflops: Optional[float]
    tensor_tflops: Optional[float]  # dense fp16/bf16 tensor cores
    bandwidth_tbs: float
    source: str


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
    size = 2048 if device.type == "cuda" else 768
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
        return Peaks(name, fp32, None, half, _probe_bandwidth_tbs(device), "measured probe (unknown GPU)")
    # CPU: no table; fp32 matmul is the best a conv can do here.
    return Peaks("CPU", _probe_matmul_tflops(device, torch.float32), None, None, _probe_bandwidth_tbs(device),
                 "measured probe (fp32 matmul, copy bandwidth)")


def compute_peak(peaks: Peaks, dtype: torch.dtype) -> float:
    if dtype in (torch.float16, torch.bfloat16) and peaks.tensor_tflops:
        return peaks.tensor_tflops
    return peaks.fma_tflops
