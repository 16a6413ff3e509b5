"""Launchers: tile choice, grids and workspaces for the Triton kernels."""
from __future__ import annotations

import functools
import os

import torch
import triton

from .._checks import env_switch
from .._layout import memory_format_of
from . import dense
from .kernels import dwconv_bwd_weight_kernel, dwconv_fwd_kernel

MAX_KERNEL = 63  # BK = next_pow2(BN + k - 1) stays <= 128 with BN = 32 (Hopper's shared memory)


# How workspaces are allocated; tests swap in a NaN-filling allocator to catch unwritten elements.
new_workspace = torch.empty


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


@functools.lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def phases(ho: int, dtype: torch.dtype) -> int:
    """Output rows per GEMM row of the forward kernel (R): each gathered input tile then serves R
    kernel rows. R must divide Ho so that a group never straddles two images. fp32 keeps R = 1:
    the 3xTF32 split doubles the operands' registers, and with more accumulators it spills (AOT
    compiles for sm_80 and sm_90)."""
    if dtype == torch.float32:
        return 1
    return 4 if ho % 4 == 0 else 2 if ho % 2 == 0 else 1


def weight_phases(kh: int, dtype: torch.dtype) -> int:
    """Kernel rows per weight-gradient program (R), which share each gathered input tile; fp32
    keeps 1 for the same reason as `phases`."""
    if dtype == torch.float32:
        return 1
    return 4 if kh >= 4 else 2 if kh >= 2 else 1


def fixed_fwd_variant(x: torch.Tensor, kw: int, groups: int):
    """The forward's meta-parameters and warps when it is not tuned: group rows, as measured
    before tuning existed (tests swap in other variants)."""
    bn = 32
    bk = triton.next_power_of_2(bn + kw - 1)
    # big row tiles amortize the Toeplitz gather; small maps at small batch want small ones
    bm = 64 if groups >= 64 else max(16, triton.next_power_of_2(groups))
    return dict(BM=bm, BN=bn, BK=bk, BATCH_ROWS=False, ALIGN=1, CARRY_BANDS=bm == 16), 4  # as in FWD_TILES


# Forward variants autotuned on the GPU: group-row tiles (any batch) and batch-row tiles (batch
# >= BATCH_ROWS_MIN; see kernels.py). The key is the map and kernel size (and, added by Triton,
# the dtypes) plus TUNE_CLASS: whether the batch reaches BATCH_ROWS_MIN and the widest vector the
# input's strides allow. Never the batch size itself, so a new batch size re-tunes at most once
# (when it crosses BATCH_ROWS_MIN). BK must hold BN + kw - 1 input columns (plus ALIGN - 1 for
# an aligned batch-row tile), so the pruning keeps, for each tile, the smallest BK that does.
# Group rows use BN = 32 only: with BN = 64 a 31-wide kernel needs BK = 128 and every dtype spills
# (AOT compiles for sm_80 and sm_90); fp32 (3xTF32) keeps BM <= 64, above which it needs 120+ KiB
# of shared memory. Batch-row tiles use BN = 16: with BN = 32 they spill on sm_80 on unaligned
# inputs (32 bytes), and a 16-wide strip leaves room in BK = 64 for an 8-element aligned start up
# to kw = 42.
# Group-row tiles: (BM, BN, warps, carry the bands across iterations). Carrying gathers one band
# per iteration instead of R (sm_90 SASS, bf16: 382 instead of 897 instructions per iteration at
# BM = 16, 406 instead of 591 at BM = 64 with 8 warps) but holds R - 1 more bands in registers:
# the other tiles then spill (24 to 144 bytes), so they gather all R. BM = 16 serves batch 1 on
# small maps.
FWD_TILES = ((64, 32, 4, False), (32, 32, 4, False), (16, 32, 4, True), (64, 32, 8, True), (128, 32, 8, False))
BATCH_ROW_TILES = ((64, 16, 4), (64, 16, 8), (128, 16, 8))
BATCH_ROWS_MIN = 16
FWD_KEY = ["Ho", "Wo", "KH", "KW", "TUNE_CLASS"]


def fwd_configs():
    group = [triton.Config({"BM": bm, "BN": bn, "BK": bk, "BATCH_ROWS": False, "ALIGN": 1, "CARRY_BANDS": carry},
                           num_warps=warps)
             for bm, bn, warps, carry in FWD_TILES for bk in (32, 64, 128)]
    batch = [triton.Config({"BM": bm, "BN": bn, "BK": bk, "BATCH_ROWS": True, "ALIGN": 1, "CARRY_BANDS": False},
                           num_warps=warps)
             for bm, bn, warps in BATCH_ROW_TILES for bk in (32, 64, 128)]
    return group + batch


def vector_width(x: torch.Tensor) -> int:
    """The widest vector (elements, at most 16 bytes) a batch-row tile of ``x`` may load: unit
    column stride, and the width divides W, every other stride and the address."""
    if x.stride(3) != 1:
        return 1
    for width in (8, 4, 2):
        if width * x.element_size() <= 16 and x.shape[3] % width == 0 and \
                all(s % width == 0 for s in x.stride()[:3]) and x.data_ptr() % (width * x.element_size()) == 0:
            return width
    return 1


def tune_class(*tensors: torch.Tensor) -> int:
    """What a tuned variant depends on besides the shapes: 2 * the vector width all ``tensors``
    allow + whether the batch is large enough for batch-row tiles."""
    width = min(vector_width(t) for t in tensors)
    return 2 * width + int(tensors[0].shape[0] >= BATCH_ROWS_MIN)


def _tuning_class(named_args):
    """(vector width, batch rows allowed) from the call's TUNE_CLASS (see tune_class)."""
    tune = named_args.get("TUNE_CLASS", 2)
    return tune // 2, bool(tune % 2)


def _with_alignment(config, **alignment):
    """``config`` with its alignment meta-parameters replaced (batch-row variants)."""
    return triton.Config(dict(config.kwargs, **alignment), num_warps=config.num_warps, num_stages=config.num_stages)


def _aligned(bn: int, bk: int, kw: int, width: int) -> int:
    """The widest alignment <= width whose tile still fits in BK columns."""
    while width > 1 and bn + kw - 1 + width - 1 > bk:
        width //= 2
    return width


def prune_fwd_configs(configs, named_args, **kwargs):
    kw = named_args["KW"]
    x = named_args.get("x_ptr")
    width, batch_rows_ok = _tuning_class(named_args)
    fp32 = getattr(x, "dtype", None) == torch.float32
    smallest = {}
    for config in configs:
        bm, bn, bk = config.kwargs["BM"], config.kwargs["BN"], config.kwargs["BK"]
        batch_rows = config.kwargs.get("BATCH_ROWS", False)
        key = (batch_rows, bm, bn, config.num_warps)
        if bk < bn + kw - 1 or (fp32 and bm > 64) or (batch_rows and not batch_rows_ok):
            continue
        if key not in smallest or bk < smallest[key].kwargs["BK"]:
            smallest[key] = config
    pruned = []
    for config in smallest.values():
        if config.kwargs.get("BATCH_ROWS", False):
            config = _with_alignment(config, ALIGN=_aligned(config.kwargs["BN"], config.kwargs["BK"], kw, width))
        pruned.append(config)
    return pruned


def fwd_grid(n: int, c: int, ho: int, wo: int, r: int):
    """The forward's grid for a variant's meta-parameters (see dwconv_fwd_kernel)."""
    def grid(meta):
        if meta.get("BATCH_ROWS", False):
            return (c * triton.cdiv(ho, r), triton.cdiv(wo, meta["BN"]), triton.cdiv(n, meta["BM"]))
        return (triton.cdiv(n * ho // r, meta["BM"]), triton.cdiv(wo, meta["BN"]), c)
    return grid


AUTOTUNE_ENV = "REPLK_OPS_TRITON_AUTOTUNE"


def autotune_enabled() -> bool:
    """Off with REPLK_OPS_TRITON_AUTOTUNE=0 (one heuristic tile, no tuning on first use: test runs
    over many shapes); any value other than 0 or 1 raises ValueError naming the variable."""
    return env_switch(AUTOTUNE_ENV)


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def fixed_tiles() -> bool:
    """One heuristic variant per call instead of the tuned one: tuning switched off, the
    interpreter (it cannot time), CUDA-graph capture (timing would break the capture), or
    deterministic algorithms (a variant chosen by timing may differ between processes, and with
    it the last bits of the results)."""
    return (not autotune_enabled() or interpreting() or torch.are_deterministic_algorithms_enabled()
            or _capturing())


# Weight-gradient variants tuned on the GPU: the product's orientation (P = dY^T X has M = 32; its
# transpose has M = BK >= 64, which Hopper's warpgroup MMAs need), the warps, and for batches of
# 16 and more the batch-row tiles (see kernels.py). The key is the forward's: never the batch size.
BWD_WEIGHT_VARIANTS = ((False, 4), (True, 4), (False, 8), (True, 8))  # (TRANSPOSED, warps)


# Batch rows: the transposed product with 8 warps only; the others spill on sm_80 or sm_90
# (4 warps up to 208 bytes on unaligned inputs, 8 warps untransposed up to 16 bytes).
BATCH_ROW_WEIGHT_VARIANTS = ((True, 8),)


def bwd_weight_configs():
    return ([triton.Config({"TRANSPOSED": transposed, "BATCH_ROWS": False, "ALIGN": 1, "DY_ALIGN": 1},
                           num_warps=warps) for transposed, warps in BWD_WEIGHT_VARIANTS]
            + [triton.Config({"TRANSPOSED": transposed, "BATCH_ROWS": True, "ALIGN": 1, "DY_ALIGN": 1},
                             num_warps=warps) for transposed, warps in BATCH_ROW_WEIGHT_VARIANTS])


def prune_bwd_weight_configs(configs, named_args, **kwargs):
    width, batch_rows_ok = _tuning_class(named_args)
    align = _aligned(kwargs["BN"], kwargs["BK"], named_args["KW"], width)
    pruned = []
    for config in configs:
        if config.kwargs["BATCH_ROWS"]:
            if not batch_rows_ok:
                continue
            config = _with_alignment(config, ALIGN=align, DY_ALIGN=width)
        pruned.append(config)
    return pruned


def fixed_bwd_weight_variant(x: torch.Tensor, grad_out: torch.Tensor, bn: int, bk: int, kw: int):
    """The weight gradient's variant and warps when it is not tuned: the group-row product as
    measured before tuning existed (tests swap in other variants)."""
    return dict(TRANSPOSED=False, BATCH_ROWS=False, ALIGN=1, DY_ALIGN=1), 4


@functools.lru_cache(maxsize=None)
def _tuned_bwd_weight_kernel():
    return triton.autotune(configs=bwd_weight_configs(), key=FWD_KEY,
                           prune_configs_by={"early_config_prune": prune_bwd_weight_configs})(dwconv_bwd_weight_kernel)


@functools.lru_cache(maxsize=None)
def _tuned_fwd_kernel():
    return triton.autotune(configs=fwd_configs(), key=FWD_KEY,
                           prune_configs_by={"early_config_prune": prune_fwd_configs})(dwconv_fwd_kernel)


def _flags(x: torch.Tensor):
    upcast = interpreting() and x.dtype == torch.bfloat16
    # fp32 via tensor cores needs the 3xTF32 split for fp32 accuracy; the interpreter is exact
    ieee = interpreting()
    return upcast, ieee


def fwd(x, weight, bias, ph, pw, out_hw=None, out=None):
    n, c, h, w = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    ho, wo = out_hw if out_hw is not None else (h + 2 * ph - kh + 1, w + 2 * pw - kw + 1)
    if out is None:
        out = torch.empty((n, c, ho, wo), dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))
    if out.numel() == 0:
        return out
    weight = weight.contiguous()
    upcast, ieee = _flags(x)
    # both forward kernels take the same arguments
    args = (x, weight, bias if bias is not None else weight, out, n, h, w, ho, wo, kh, kw, ph, pw,
            *x.stride(), *out.stride())
    flags = dict(HAS_BIAS=bias is not None, UPCAST=upcast, IEEE=ieee)
    if dense.covers_map(h, w, kh, kw):
        bm, bn, bk = dense.tiles(n, ho * wo)
        dense.dwconv_dense_fwd_kernel[(triton.cdiv(n, bm), triton.cdiv(ho * wo, bn), c)](
            *args, BM=bm, BN=bn, BK=bk, **flags)
        return out
    r = phases(ho, x.dtype)
    grid = fwd_grid(n, c, ho, wo, r)
    if fixed_tiles():  # TUNE_CLASS matters to the tuning only
        meta, warps = fixed_fwd_variant(x, kw, n * ho // r)
        dwconv_fwd_kernel[grid(meta)](*args, 0, R=r, **meta, **flags, num_warps=warps)
    else:
        _tuned_fwd_kernel()[grid](*args, tune_class(x), R=r, **flags)
    return out


def bwd_input(grad_out, weight, ph, pw, out=None):
    kh, kw = weight.shape[2], weight.shape[3]
    h = grad_out.shape[2] - 2 * ph + kh - 1
    w = grad_out.shape[3] - 2 * pw + kw - 1
    # the correlation of dy with the rotated kernel and padding k - 1 - p (negative is fine: the
    # kernel masks by index, so no cropping is needed)
    return fwd(grad_out, weight.flip(2, 3), None, kh - 1 - ph, kw - 1 - pw, out_hw=(h, w), out=out)


def weight_columns_block(kw: int) -> int:
    """The weight gradient's block of kernel columns: a power of two, and at least 2 because
    triton 3.0's interpreter ignores the mask of a one-element store (with kw = 1 it wrote the
    masked-off rows past the kernel's last one)."""
    return max(2, triton.next_power_of_2(kw))


def bwd_weight(grad_out, x, kh, kw, ph, pw):
    n, c, h, w = x.shape
    ho, wo = grad_out.shape[2], grad_out.shape[3]
    grad_bias = grad_out.sum(dim=(0, 2, 3), dtype=torch.float32).to(x.dtype)
    if n == 0:
        return torch.zeros((c, 1, kh, kw), dtype=x.dtype, device=x.device), grad_bias
    bn = 32
    bk = triton.next_power_of_2(bn + kw - 1)
    r = weight_phases(kh, x.dtype)
    row_groups = triton.cdiv(kh, r)
    total_rows = n * (ho + r - 1)  # each image's rows, plus R - 1 for the shifted grad_out rows
    br = 64 if total_rows >= 64 else 16
    strips = triton.cdiv(wo, bn)
    if interpreting() or x.device.type != "cuda":
        splits = 1
    else:  # enough programs to fill the GPU several times over
        want = 4 * _sm_count(x.device.index or 0)
        splits = max(1, min(triton.cdiv(want, strips * row_groups * c), triton.cdiv(total_rows, 4 * br)))
    rows_per_split = triton.cdiv(triton.cdiv(total_rows, splits), br) * br
    splits = triton.cdiv(total_rows, rows_per_split)
    partials = new_workspace((strips * splits, c, kh, kw), dtype=torch.float32, device=x.device)
    upcast, ieee = _flags(x)
    grid = (strips * splits, row_groups, c)
    args = (grad_out, x, partials, n, c, h, w, ho, wo, kh, kw, ph, pw, rows_per_split, splits,
            *grad_out.stride(), *x.stride())
    meta = dict(R=r, BR=br, BN=bn, BK=bk, KWP=weight_columns_block(kw), UPCAST=upcast, IEEE=ieee)
    if fixed_tiles():  # TUNE_CLASS matters to the tuning only
        variant, warps = fixed_bwd_weight_variant(x, grad_out, bn, bk, kw)
        dwconv_bwd_weight_kernel[grid](*args, 0, **variant, **meta, num_warps=warps)
    else:  # every variant writes every partial it owns, so timing runs leave nothing behind
        _tuned_bwd_weight_kernel()[grid](*args, tune_class(x, grad_out), **meta)
    # a fixed-order sum of the partials: deterministic, whatever the grid
    grad_weight = partials.sum(dim=0).unsqueeze(1).to(x.dtype)
    return grad_weight, grad_bias
