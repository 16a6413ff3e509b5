"""The catalogue of Triton variants, and how a call gets one: the short list of at most MAX_TUNED
variants the tuner (tuner.py) compiles and times for a call, the heuristic variant when nothing is
tuned, and the meta-parameters a variant gives the kernel for a call. The tuner, the tests and the
benchmarks all read FORWARD_VARIANTS and WEIGHT_GRAD_VARIANTS: a new variant is its kernel code
plus one entry here."""
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
# >= BATCH_ROWS_MIN; see fwd.py). The key is the map and kernel size, the dtype and TUNE_CLASS:
# whether the batch reaches BATCH_ROWS_MIN and the widest vector the input's strides allow, plus
# the short list itself (it leaves out tiles a small call cannot fill). Never the batch size
# itself, so a new batch size re-tunes only where its short list differs. BK must hold BN + kw - 1
# input columns (plus ALIGN - 1 for an aligned batch-row tile): the smallest BK that does (meta).
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
# untransposed up to 16 bytes). The key is the forward's, with the weight gradient's short list.
WEIGHT_GRAD_VARIANTS = (
    WeightGradVariant(transposed=False, warps=4),
    WeightGradVariant(transposed=True, warps=4),
    WeightGradVariant(transposed=False, warps=8),
    WeightGradVariant(transposed=True, warps=8),
    WeightGradVariant(transposed=True, warps=8, batch_rows=True),
)
BATCH_ROWS_MIN = 16


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


MAX_TUNED = 4  # variants compiled and timed per kernel and tuning key: what bounds a cold start


def tune_class_of(width: int, batch: int) -> int:
    """2 * the vector width + whether the batch is large enough for batch-row tiles."""
    return 2 * width + int(batch >= BATCH_ROWS_MIN)


def tune_class(*tensors: torch.Tensor) -> int:
    """What a tuned variant depends on besides the shapes (tune_class_of): the widest vector all
    ``tensors`` allow, and the first one's batch."""
    return tune_class_of(min(vector_width(t) for t in tensors), tensors[0].shape[0])


def _holds(variant: ForwardVariant, kw: int) -> bool:
    try:
        variant.meta(kw)
    except ValueError:
        return False
    return True


def forward_candidates(kw: int, dtype: torch.dtype, batch: int):
    """Every forward variant that can serve a kw-wide kernel: BK holds BN + kw - 1 columns, fp32
    (3xTF32) keeps BM <= 64 (above, it needs 120+ KiB of shared memory), and batch-row tiles only
    for batches of BATCH_ROWS_MIN and more."""
    return [v for v in FORWARD_VARIANTS if _holds(v, kw) and not (dtype == torch.float32 and v.bm > 64)
            and (v.rows == GROUP_ROWS or batch >= BATCH_ROWS_MIN)]


def _filled(variants, rows: int):
    """The variants whose row tile the call fills: a tile of more GEMM rows than the call has only
    adds idle rows, so it is left out (the smallest tile always stays); largest tiles first."""
    variants = sorted(variants, key=lambda v: (-v.bm, -v.warps))
    kept = [v for v in variants if v.bm <= max(16, triton.next_power_of_2(max(rows, 1)))]
    return kept or variants[-1:]


def _interleave(*lists):
    merged = []
    for group in zip(*(lst + [None] * (MAX_TUNED - len(lst)) for lst in lists)):
        merged += [v for v in group if v is not None]
    return merged


def forward_shortlist(kw: int, dtype: torch.dtype, batch: int, groups: int):
    """At most MAX_TUNED forward variants to tune for a call of ``batch`` images whose group-row
    GEMM has ``groups`` rows (N * Ho / R): of forward_candidates, those whose tiles the call fills,
    largest first, taking group rows and batch rows in turn."""
    candidates = forward_candidates(kw, dtype, batch)
    group = _filled([v for v in candidates if v.rows == GROUP_ROWS], groups)
    rows = _filled([v for v in candidates if v.rows == BATCH_ROWS], batch) if batch >= BATCH_ROWS_MIN else []
    return tuple(_interleave(group, rows)[:MAX_TUNED])


# The order the weight gradient's variants are shortlisted in: the batch-row product, then the
# transposed products (M = BK >= 64, what Hopper's warpgroup MMAs need), then the untransposed ones.
_WEIGHT_GRAD_ORDER = sorted(WEIGHT_GRAD_VARIANTS, key=lambda v: (not v.batch_rows, not v.transposed, v.warps == 8))


def weight_grad_shortlist(batch: int):
    """At most MAX_TUNED weight-gradient variants to tune: batch rows only for batches of
    BATCH_ROWS_MIN and more; for those, the untransposed product with 8 warps is the one left out."""
    return tuple([v for v in _WEIGHT_GRAD_ORDER if batch >= BATCH_ROWS_MIN or not v.batch_rows][:MAX_TUNED])


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
