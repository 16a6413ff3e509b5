"""The CUDA kernels of csrc/cuda/ built for the CPU (tests/host_emulation) and called like the
extension calls them: the same instantiation files, launchers, tilings and kernel source, and the
same algo table and choice (csrc/cuda/algo_table.cpp, algo_choice.cpp: "auto"'s choice, workspace
sizes), so their index math, tile edges, barriers, fragment layouts and the choice of kernel are
tested without a GPU."""
from __future__ import annotations

import ctypes
import glob
import json
import os
import re
import shutil
import subprocess
from typing import List, Optional

import torch

from conv_testing import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATION = os.path.join(ROOT, "tests", "host_emulation")
SOURCE = os.path.join(EMULATION, "kernels_on_cpu.cpp")
RACE_CHECK = os.path.join(EMULATION, "race_check.cpp")
KERNEL_SOURCES = os.path.join(ROOT, "csrc", "cuda", "kernels", "*.cu")  # as setup.py globs them
# csrc/cuda/algo_table.h's Dtype and Pass
DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
PASS_CODES = {"fwd": 0, "bwd_input": 1, "bwd_weight": 2}
NO_PLAN = -1  # kernels_on_cpu.cpp's kNoPlan

_i64p = ctypes.POINTER(ctypes.c_int64)
_vp = ctypes.c_void_p
_int = ctypes.c_int


def cuda_include_dirs() -> Optional[List[str]]:
    """The CUDA toolkit's header directories, as nvcc itself reports them (None without nvcc)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    probe = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                           capture_output=True, text=True, timeout=HANG_GUARD_S)
    found = re.findall(r'INCLUDES="((?:[^"\\]|\\.)*)"', probe.stdout + probe.stderr)
    dirs = [flag[2:] for line in found for flag in line.split() if flag.startswith("-I")]
    return [d for d in dirs if os.path.isfile(os.path.join(d, "cuda_runtime.h"))] or None


def _compile(source: str, output: str, *flags: str) -> None:
    includes = cuda_include_dirs()
    if includes is None:
        raise RuntimeError("nvcc not found: the CUDA headers (cuda_fp16.h, cuda_bf16.h) are needed")
    # kernels_on_cpu.cpp includes every instantiation file, whichever there are
    out_dir = os.path.dirname(os.path.abspath(output))
    with open(os.path.join(out_dir, "kernel_sources.inc"), "w") as handle:
        handle.writelines(f'#include "{path}"\n' for path in sorted(glob.glob(KERNEL_SOURCES)))
    command = [os.environ.get("CXX", "c++"), "-std=c++20", "-pthread", "-Wall", "-Wno-unknown-pragmas", *flags,
               f"-I{out_dir}", *(f"-I{d}" for d in includes), source, "-o", output]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_S)
    if done.returncode != 0:
        raise RuntimeError(f"building {os.path.basename(source)} failed:\n{' '.join(command)}\n{done.stderr[-4000:]}")


def missing_toolchain(out_dir: str) -> Optional[str]:
    """None if the emulation can be built here (CUDA headers, a C++20 compiler with <barrier>),
    else what is missing."""
    if cuda_include_dirs() is None:
        return "nvcc not found: the CUDA headers (cuda_fp16.h, cuda_bf16.h) are needed"
    probe = os.path.join(out_dir, "barrier_probe.cpp")
    with open(probe, "w") as handle:
        handle.write("#include <barrier>\nint main() { std::barrier<> b(1); b.arrive_and_wait(); }\n")
    try:
        _compile(probe, os.path.join(out_dir, "barrier_probe"))
    except RuntimeError as error:
        return f"the C++ compiler cannot build C++20 std::barrier code: {str(error).splitlines()[-1]}"
    return None


LIBRARY = "replk_emulated_kernels.so"


def compile_kernels(out_dir: str) -> None:
    _compile(SOURCE, os.path.join(out_dir, LIBRARY), "-O1", "-shared", "-fPIC")


def load(out_dir: str) -> "EmulatedKernels":
    """The kernels ``compile_kernels`` built into ``out_dir``."""
    return EmulatedKernels(ctypes.CDLL(os.path.join(out_dir, LIBRARY)))


def build(out_dir: str) -> "EmulatedKernels":
    compile_kernels(out_dir)
    return load(out_dir)


def race_check(out_dir: str) -> subprocess.CompletedProcess:
    """Builds tests/host_emulation/race_check.cpp with ThreadSanitizer, and UBSan's alignment check
    (a vector access at an address the GPU would fault on, "misaligned address", stops it), and
    runs it."""
    program = os.path.join(out_dir, "race_check")
    _compile(RACE_CHECK, program, "-O1", "-g", "-fsanitize=thread,alignment", "-fno-sanitize-recover=alignment")
    return subprocess.run([program], capture_output=True, text=True, timeout=HANG_GUARD_S)


def _i64(values) -> ctypes.Array:
    return (ctypes.c_int64 * len(values))(*[int(v) for v in values])


def _poisoned(shape, like, memory_format):
    return torch.full(shape, float("nan"), dtype=like.dtype).contiguous(memory_format=memory_format)


class EmulatedKernels:
    """fwd / bwd_input / bwd_weight with the arguments of ``torch.ops.replk_ops_C`` (CPU tensors)."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        _str = ctypes.c_char_p
        lib.replk_emulated_fwd.argtypes = [_int, _vp, _vp, _vp, _vp, _i64p, _i64p, _i64p] + [_int] * 5 + [_str]
        lib.replk_emulated_bwd_weight_splits.argtypes = [_int, _i64p] + [_int] * 4 + [_str]
        lib.replk_emulated_bwd_weight.argtypes = [_int, _vp, _vp, _vp, _vp, _i64p, _i64p, _i64p] + [_int] * 4 + [_str]
        lib.replk_emulated_choice.argtypes = [_int, _int, _i64p] + [_int] * 4 + [_str]
        lib.replk_emulated_choice.restype = _str
        lib.replk_emulated_algo_table.restype = _str
        lib.replk_emulated_last_error.restype = _str
        lib.replk_emulated_self_check.argtypes = [_vp, _int, _int]
        lib.replk_emulated_set_sm_count.argtypes = [_int]
        lib.replk_emulated_set_compute_capability.argtypes = [_int, _int]
        self.table = json.loads(lib.replk_emulated_algo_table().decode())

    def algos(self, pass_: str, dtype: torch.dtype, tensor_cores: Optional[bool] = None) -> List[str]:
        """The pass's algos that take ``dtype``, in table order; ``tensor_cores`` keeps only those that
        need compute capability 8.0 (True) or the others (False)."""
        return [row["algo"] for row in self.table if row["pass"] == pass_ and str(dtype)[6:] in row["dtypes"]
                and (tensor_cores is None or (row["min_cc"] >= 80) == tensor_cores)]

    def choice(self, pass_: str, dtype: torch.dtype, sizes, kh: int, kw: int, ph: int, pw: int,
               algo: str = "auto") -> str:
        """What ``algo`` resolves to for the pass on the emulated H100; sizes: N, C, H, W, Ho, Wo of
        the pass's input and output. Raises with the choice's message where nothing runs."""
        name = self.lib.replk_emulated_choice(PASS_CODES[pass_], DTYPE_CODES[dtype], _i64(sizes), kh, kw, ph, pw,
                                              algo.encode())
        if name is None:
            raise RuntimeError(self.lib.replk_emulated_last_error().decode())
        return name.decode()

    def set_sm_count(self, sm_count: int) -> None:
        self.lib.replk_emulated_set_sm_count(sm_count)

    def set_compute_capability(self, major: int, minor: int) -> None:
        self.lib.replk_emulated_set_compute_capability(major, minor)

    def _check(self, err: int, what: str) -> None:
        if err == NO_PLAN:
            raise RuntimeError(self.lib.replk_emulated_last_error().decode())
        if err != 0:
            raise RuntimeError(f"emulated {what} kernel: launch failed with cudaError_t {err}")

    def _run_forward(self, x, weight, bias, ph, pw, flip, out, algo):
        weight = weight.contiguous()
        bias = None if bias is None else bias.contiguous()
        sizes = _i64([*x.shape, out.shape[2], out.shape[3]])
        err = self.lib.replk_emulated_fwd(
            DTYPE_CODES[x.dtype], x.data_ptr(), weight.data_ptr(), None if bias is None else bias.data_ptr(),
            out.data_ptr(), sizes, _i64(x.stride()), _i64(out.stride()), weight.shape[2], weight.shape[3], ph, pw,
            int(flip), algo.encode())
        self._check(err, f"{algo} forward")
        return out

    def fwd(self, x, weight, bias, ph, pw, algo="direct", memory_format=torch.contiguous_format):
        ho = x.shape[2] + 2 * ph - weight.shape[2] + 1
        wo = x.shape[3] + 2 * pw - weight.shape[3] + 1
        y = _poisoned((x.shape[0], x.shape[1], ho, wo), x, memory_format)
        return self._run_forward(x, weight, bias, ph, pw, False, y, algo)

    def bwd_input(self, grad_out, weight, ph, pw, algo="direct", memory_format=torch.contiguous_format):
        kh, kw = weight.shape[2], weight.shape[3]
        h = grad_out.shape[2] - 2 * ph + kh - 1
        w = grad_out.shape[3] - 2 * pw + kw - 1
        dx = _poisoned((grad_out.shape[0], grad_out.shape[1], h, w), grad_out, memory_format)
        # as csrc/cuda/dwconv_ops.cpp: the rotated kernel with padding k - 1 - p
        return self._run_forward(grad_out, weight, None, kh - 1 - ph, kw - 1 - pw, True, dx, algo)

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw, algo="direct"):
        sizes = _i64([*x.shape, grad_out.shape[2], grad_out.shape[3]])
        splits = self.lib.replk_emulated_bwd_weight_splits(DTYPE_CODES[x.dtype], sizes, kh, kw, ph, pw, algo.encode())
        self._check(0 if splits >= 0 else NO_PLAN, f"{algo} weight-gradient")
        c = x.shape[1]
        partial_w = torch.full((splits, c, kh, kw), float("nan"))
        partial_b = torch.full((splits, c), float("nan"))
        err = self.lib.replk_emulated_bwd_weight(
            DTYPE_CODES[x.dtype], grad_out.data_ptr(), x.data_ptr(), partial_w.data_ptr(), partial_b.data_ptr(),
            sizes, _i64(x.stride()), _i64(grad_out.stride()), kh, kw, ph, pw, algo.encode())
        self._check(err, f"{algo} weight-gradient")
        # as csrc/cuda/dwconv_ops.cpp: the partials summed in a fixed order
        return partial_w.sum(0).unsqueeze(1).to(x.dtype), partial_b.sum(0).to(x.dtype)

    def self_check(self, blocks: int, threads: int) -> torch.Tensor:
        out = torch.zeros(blocks, threads, 2)
        self._check(self.lib.replk_emulated_self_check(out.data_ptr(), blocks, threads), "self-check")
        return out
