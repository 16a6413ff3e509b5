"""Compile the Triton kernels ahead of time for sm_80 and sm_90 (no GPU needed) and report their
instruction mix and resources: tensor-core instructions in the PTX (mma.sync on sm_80, wgmma on
sm_90), vector global loads (ld.global.v2/v4), and registers, stack, shared and local memory from
the cubin (cuobjdump, shipped with Triton). The forward kernels are compiled as a run specializes
them on an aligned contiguous NCHW input: 16-byte aligned pointers, unit column strides.
Usage: python tools/triton_isa_report.py [--json]. Run it without TRITON_INTERPRET."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from replk_ops.backends.triton.kernels import tuning
from replk_ops.backends.triton.kernels.bwd_weight import dwconv_bwd_weight_kernel, weight_columns_block
from replk_ops.backends.triton.kernels.dense import dwconv_dense_fwd_kernel
from replk_ops.backends.triton.kernels.fwd import dwconv_fwd_kernel

FWD_INTS = ["N", "H", "W", "Ho", "Wo", "KH", "KW", "PH", "PW", "sxn", "sxc", "sxh", "sxw", "syn", "syc", "syh", "syw"]
BWD_INTS = ["N", "C", "H", "W", "Ho", "Wo", "KH", "KW", "PH", "PW", "ROWS_PER_SPLIT", "SPLITS",
            "sdn", "sdc", "sdh", "sdw", "sxn", "sxc", "sxh", "sxw"]


def _catalogued(catalogue, **fields):
    """The one entry of ``catalogue`` with these fields."""
    (variant,) = [v for v in catalogue if all(getattr(v, k) == value for k, value in fields.items())]
    return variant


def _variant(kernel: str, dtype: str):
    """The variant a kernel of the report is compiled as, and the vector width of its input: the
    forward's group rows as the 8-warp tile that carries its bands (with 4 warps group-row tiles
    spill up to 8 bytes in half precision on sm_90 when compiled as a run specializes them: unit
    strides, aligned pointers); its batch rows as 16-wide strips of 128 images (fp32: 64), on an
    aligned input (16-byte vectors) and an unaligned one; the dense GEMM as RepLKNet-31B stage 3 at
    batch 64 (14x14 maps, 27x27 kernels) runs it; the weight gradient's group rows both ways
    (P = dY^T X, and its transpose, the variant for warpgroup MMAs) and its tuned batch rows,
    aligned and unaligned."""
    aligned = 16 // (4 if dtype == "fp32" else 2) if not kernel.endswith("_unaligned") else 1
    if kernel == "fwd":
        return _catalogued(tuning.FORWARD_VARIANTS, rows=tuning.GROUP_ROWS, bm=64, warps=8), 1
    if kernel.startswith("fwd_batch"):
        return _catalogued(tuning.FORWARD_VARIANTS, rows=tuning.BATCH_ROWS, bm=64 if dtype == "fp32" else 128,
                           warps=8), aligned
    if kernel == "dense_fwd":
        return tuning.ForwardVariant(tuning.DENSE, 64, 64), 1
    if kernel.startswith("bwd_weight_batch"):
        return _catalogued(tuning.WEIGHT_GRAD_VARIANTS, batch_rows=True), aligned
    return _catalogued(tuning.WEIGHT_GRAD_VARIANTS, batch_rows=False, transposed=kernel == "bwd_weight_t",
                       warps=4), 1


def _source(kernel: str, dtype: str, kw: int = 31) -> ASTSource:
    variant, width = _variant(kernel, dtype)
    r = 1 if dtype == "fp32" else 4
    attrs = None
    if kernel.startswith("fwd"):
        sig = {"x_ptr": f"*{dtype}", "w_ptr": f"*{dtype}", "b_ptr": f"*{dtype}", "y_ptr": f"*{dtype}",
               **{k: "i32" for k in FWD_INTS}, "TUNE_CLASS": "i32"}
        const = {"HAS_BIAS": True, "R": r, **variant.meta(kw, width), "UPCAST": False, "IEEE": False,
                 "sxw": 1, "syw": 1}
        fn = dwconv_fwd_kernel
        attrs = {(fn.arg_names.index(p),): [["tt.divisibility", 16]] for p in ("x_ptr", "w_ptr", "b_ptr", "y_ptr")}
    elif kernel == "dense_fwd":
        sig = {"x_ptr": f"*{dtype}", "w_ptr": f"*{dtype}", "b_ptr": f"*{dtype}", "y_ptr": f"*{dtype}",
               **{k: "i32" for k in FWD_INTS}}
        const = {"HAS_BIAS": True, **variant.meta(kw), "UPCAST": False, "IEEE": False}
        fn = dwconv_dense_fwd_kernel
    else:
        bn = 32
        bk = triton.next_power_of_2(bn + kw - 1)
        sig = {"dy_ptr": f"*{dtype}", "x_ptr": f"*{dtype}", "part_ptr": "*fp32", **{k: "i32" for k in BWD_INTS},
               "TUNE_CLASS": "i32"}
        const = {"R": r, "BR": 64, "BN": bn, "BK": bk, "KWP": weight_columns_block(kw), "UPCAST": False, "IEEE": False,
                 **variant.meta(bn, bk, kw, width), "sdw": 1, "sxw": 1}
        fn = dwconv_bwd_weight_kernel
        attrs = {(fn.arg_names.index(p),): [["tt.divisibility", 16]] for p in ("dy_ptr", "x_ptr", "part_ptr")}
    sig.update({k: "constexpr" for k in const})
    return ASTSource(fn=fn, signature=sig, constexprs=const, attrs=attrs), variant.warps


def _resources(cubin: bytes) -> dict:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        text = subprocess.run([tool, "--dump-resource-usage", handle.name], capture_output=True, text=True,
                              check=True).stdout
    return {key: int(value) for key, value in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text)}


KERNELS = ("fwd", "fwd_batch", "fwd_batch_unaligned", "dense_fwd", "bwd_weight", "bwd_weight_t", "bwd_weight_batch",
           "bwd_weight_batch_unaligned")


def report(kernels=KERNELS, dtypes=("fp16", "bf16", "fp32"), archs=(80, 90)):
    rows = []
    for arch in archs:
        for kernel in kernels:
            for dtype in dtypes:
                source, warps = _source(kernel, dtype)
                compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": warps})
                ptx = compiled.asm["ptx"]
                rows.append({"arch": f"sm_{arch}", "kernel": kernel, "dtype": dtype,
                             "wgmma": len(re.findall(r"\bwgmma\.mma_async", ptx)),
                             "mma.sync": len(re.findall(r"\bmma\.sync", ptx)),
                             "vector_loads": len(re.findall(r"\bld\.global(?:\.\w+)*\.v[24]\.", ptx)),
                             **_resources(compiled.asm["cubin"])})
    return rows


def main() -> int:
    rows = report()
    if "--json" in sys.argv:
        import json

        print(json.dumps(rows))
        return 0
    print(f"{'arch':<6} {'kernel':<26} {'dtype':<5} {'wgmma':>6} {'mma.sync':>9} {'vec.ld':>7} {'REG':>4} {'STACK':>6} "
          f"{'SHARED':>7} {'LOCAL':>6}")
    for r in rows:
        print(f"{r['arch']:<6} {r['kernel']:<26} {r['dtype']:<5} {r['wgmma']:>6} {r['mma.sync']:>9} {r['vector_loads']:>7} "
              f"{r.get('REG', 0):>4} {r.get('STACK', 0):>6} {r.get('SHARED', 0):>7} {r.get('LOCAL', 0):>6}")
    missing = [r for r in rows if r["wgmma"] + r["mma.sync"] == 0]
    if missing:
        print("no tensor-core instructions in:", missing, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
