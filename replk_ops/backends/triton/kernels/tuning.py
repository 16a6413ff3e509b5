"""The catalogue of Triton variants, and how a call gets one: the autotuner's configs and their
pruning, the heuristic variant when nothing is tuned, and the meta-parameters a variant gives
the kernel for a call. The autotuner, the tests and the benchmarks all read FORWARD_VARIANTS and
WEIGHT_GRAD_VARIANTS: a new variant is its kernel code plus one entry here."""
from __future__ import annotations

import dataclasses

import torch
import triton

from ...._checks import env_switch
from . import dense
from .common import aligned, interpreting, vector_width

GROUP_ROWS = "group rows"  # a tile's GEMM rows: groups of R consecutive output rows of one image
BATCH_ROWS = "batch rows"  # the same R output rows of BM images (batches of BATCH_ROWS_MIN and more)
DENSE = "dense"            # the dense per-channel GEMM (dense.py), for kernels that cover the map
BK_CHOICES = (32, 64, 128)  # input columns per row-Toeplitz tile: BN + kw - 1 (+ ALIGN - 1) of them


@dataclasses.dataclass(frozen=True)
class ForwardVariant:
    """One forward tile (the input gradient is the forward, so it takes the same ones): the rows
    of a tile (GROUP_ROWS, BATCH_ROWS or DENSE), its BM x BN output block, the warps, and for group
    rows whether to carry the kernel rows' bands across iterations (batch rows always do). BK and
    the vector alignment follow from the kernel width and the input (see `meta`)."""
    rows: str
    bm: int
    bn: int
    warps: int = 4
    carry_bands: bool = False

    def meta(self, kw: int, width: int = 1) -> dict:
        """The kernel's meta-parameters for a kw-wide kernel on an input whose batch-row tiles may
        load ``width``-element vectors: the smallest BK that holds the strip's input columns (for
        batch rows, plus the widest alignment if one fits) and that alignment."""
        if self.rows == DENSE:
            return dict(BM=self.bm, BN=self.bn, BK=dense.BK)
        batch_rows = self.rows == BATCH_ROWS
        needed = self.bn + kw - 1
        fitting = [bk for bk in BK_CHOICES if bk >= needed + (width - 1 if batch_rows else 0)] or \
            [bk for bk in BK_CHOICES if bk >= needed]
        if not fitting:
            raise ValueError(f"{self} cannot hold a {kw}-wide kernel: BK would exceed {BK_CHOICES[-1]}")
        bk = fitting[0]
        return dict(BM=self.bm, BN=self.bn, BK=bk, BATCH_ROWS=batch_rows,
                    ALIGN=aligned(self.bn, bk, kw, width) if batch_rows else 1,
                    CARRY_BANDS=self.carry_bands)


@dataclasses.dataclass(frozen=True)
class WeightGradVariant:
    """One weight-gradient variant: the product's orientation (P = dY^T X has M = BN = 32; its
    transpose X^T dY has M = BK >= 64, which Hopper's warpgroup MMAs need), the warps, and whether
    the tile's rows are batch rows (the same row of BR images) rather than consecutive loop rows."""
    transposed: bool
    warps: int
    batch_rows: bool = False

    def meta(self, bn: int, bk: int, kw: int, width: int = 1) -> dict:
        """The kernel's meta-parameters for a strip of bn output columns in bk input columns, on
        tensors whose batch-row tiles may load ``width``-element vectors."""
        return dict(TRANSPOSED=self.transposed, BATCH_ROWS=self.batch_rows,
                    ALIGN=aligned(bn, bk, kw, width) if self.batch_rows else 1,
                    DY_ALIGN=width if self.batch_rows else 1)


# Forward variants autotuned on the GPU: group-row tiles (any batch) and batch-row tiles (batch
# >= BATCH_ROWS_MIN; see fwd.py). The key is the map and kernel size (and, added by Triton, the
# dtypes) plus TUNE_CLASS: whether the batch reaches BATCH_ROWS_MIN and the widest vector the
# input's strides allow. Never the batch size itself, so a new batch size re-tunes at most once
# (when it crosses BATCH_ROWS_MIN). BK must hold BN + kw - 1 input columns (plus ALIGN - 1 for
# an aligned batch-row tile), so the pruning keeps, for each tile, the smallest BK that does.
# Group rows use BN = 32 only: with BN = 64 a 31-wide kernel needs BK = 128 and every dtype spills
# (AOT compiles for sm_80 and sm_90); fp32 (3xTF32) keeps BM <= 64, above which it needs 120+ KiB
# of shared memory. Batch-row tiles use BN = 16: with BN = 32 they spill on sm_80 on unaligned
# inputs (32 bytes), and a 16-wide strip leaves room in BK = 64 for an 8-element aligned start up
# to kw = 42.
# Group rows carrying their bands gather one band per iteration instead of R (sm_90 SASS, bf16:
# 382 instead of 897 instructions per iteration at BM = 16, 406 instead of 591 at BM = 64 with 8
# warps) but hold R - 1 more bands in registers: the other tiles then spill (24 to 144 bytes), so
# they gather all R. BM = 16 serves batch 1 on small maps.
FORWARD_VARIANTS = (
    ForwardVariant(GROUP_ROWS, 64, 32, 4),
    ForwardVariant(GROUP_ROWS, 32, 32, 4),
    ForwardVariant(GROUP_ROWS, 16, 32, 4, carry_bands=True),
    ForwardVariant(GROUP_ROWS, 64, 32, 8, carry_bands=True),
    ForwardVariant(GROUP_ROWS, 128, 32, 8),
    ForwardVariant(BATCH_ROWS, 64, 16, 4),
    ForwardVariant(BATCH_ROWS, 64, 16, 8),
    ForwardVariant(BATCH_ROWS, 128, 16, 8),
)
# Weight-gradient variants tuned on the GPU: both orientations with 4 and 8 warps, and for batches
# of BATCH_ROWS_MIN and more the batch-row tiles: the transposed product with 8 warps only; the
# others spill on sm_80 or sm_90 (4 warps up to 208 bytes on unaligned inputs, 8 warps
# untransposed up to 16 bytes). The key is the forward's: never the batch size.
WEIGHT_GRAD_VARIANTS = (
    WeightGradVariant(transposed=False, warps=4),
    WeightGradVariant(transposed=True, warps=4),
    WeightGradVariant(transposed=False, warps=8),
    WeightGradVariant(transposed=True, warps=8),
    WeightGradVariant(transposed=True, warps=8, batch_rows=True),
)
BATCH_ROWS_MIN = 16
FWD_KEY = ["Ho", "Wo", "KH", "KW", "TUNE_CLASS"]


def default_forward_variant(groups: int) -> ForwardVariant:
    """The forward's variant when it is not tuned (``groups``: its GEMM rows, N * Ho / R): group
    rows, as measured before tuning existed. Big row tiles amortize the Toeplitz gather; small
    maps at small batch want small ones."""
    bm = 64 if groups >= 64 else max(16, triton.next_power_of_2(groups))
    return next(v for v in FORWARD_VARIANTS if v.rows == GROUP_ROWS and v.bm == bm and v.warps == 4)


# the weight gradient's variant when it is not tuned: the group-row product as measured before
# tuning existed
DEFAULT_WEIGHT_GRAD_VARIANT = WEIGHT_GRAD_VARIANTS[0]


def dense_variant(n: int, out_pixels: int) -> ForwardVariant:
    """The dense GEMM's tile for n images of out_pixels output pixels each."""
    bm, bn = dense.tiles(n, out_pixels)
    return ForwardVariant(DENSE, bm, bn)


def fwd_configs():
    return [triton.Config({"BM": v.bm, "BN": v.bn, "BK": bk, "BATCH_ROWS": v.rows == BATCH_ROWS, "ALIGN": 1,
                           "CARRY_BANDS": v.carry_bands}, num_warps=v.warps)
            for v in FORWARD_VARIANTS for bk in BK_CHOICES]


def bwd_weight_configs():
    return [triton.Config({"TRANSPOSED": v.transposed, "BATCH_ROWS": v.batch_rows, "ALIGN": 1, "DY_ALIGN": 1},
                          num_warps=v.warps) for v in WEIGHT_GRAD_VARIANTS]


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
            config = _with_alignment(config, ALIGN=aligned(config.kwargs["BN"], config.kwargs["BK"], kw, width))
        pruned.append(config)
    return pruned


def prune_bwd_weight_configs(configs, named_args, **kwargs):
    width, batch_rows_ok = _tuning_class(named_args)
    align = aligned(kwargs["BN"], kwargs["BK"], named_args["KW"], width)
    pruned = []
    for config in configs:
        if config.kwargs["BATCH_ROWS"]:
            if not batch_rows_ok:
                continue
            config = _with_alignment(config, ALIGN=align, DY_ALIGN=width)
        pruned.append(config)
    return pruned


AUTOTUNE_ENV = "REPLK_OPS_TRITON_AUTOTUNE"


def autotune_enabled() -> bool:
    """Off with REPLK_OPS_TRITON_AUTOTUNE=0 (one heuristic tile, no tuning on first use: test runs
    over many shapes); any value other than 0 or 1 raises ValueError naming the variable."""
    return env_switch(AUTOTUNE_ENV)


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def fixed_tiles(interpreter: bool | None = None, capturing: bool | None = None) -> bool:
    """One heuristic variant per call instead of the tuned one: tuning switched off, the
    interpreter (it cannot time), CUDA-graph capture (timing would break the capture), or
    deterministic algorithms (a variant chosen by timing may differ between processes, and with
    it the last bits of the results). ``interpreter`` and ``capturing`` default to the current
    state."""
    return (not autotune_enabled() or (interpreting() if interpreter is None else interpreter)
            or torch.are_deterministic_algorithms_enabled() or (_capturing() if capturing is None else capturing))
