"""Checks the compiled CUDA kernels of replk_ops._C without a GPU.

For every kernel and every GPU architecture in the build: registers, static shared memory, stack
and local memory (from ``cuobjdump --dump-resource-usage``), and the instruction mix of its SASS
(``cuobjdump --dump-sass``). Fails (exit 1) on any stack or local-memory use (spills) and when a
kernel lacks the instructions its design relies on: HMMA for the tensor-core kernels, FFMA for the
fp32-accumulating CUDA-core kernels.

Usage: python tools/cuda_resource_check.py [--json PATH] [--so PATH]
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys

# kernel-name fragment -> (instructions that must appear, what they show)
EXPECTED = {
    "dwconv_fwd_mma_kernel": ("HMMA", "tensor-core MMAs (row-Toeplitz WMMA)"),
    "dwconv_fwd_mma_block_kernel": ("HMMA", "tensor-core MMAs (row-Toeplitz WMMA)"),
    "dwconv_fwd_mma_rows_kernel": ("HMMA", "tensor-core MMAs (row-Toeplitz mma.sync, strided rows)"),
    "dwconv_fwd_direct_kernel": ("FFMA", "fp32 FMAs (direct tiles, fp32 accumulation)"),
    "dwconv_fwd_direct_rows_kernel": ("FFMA", "fp32 FMAs (direct tiles, two rows per thread)"),
    "dwconv_bwd_weight_kernel": ("FFMA", "fp32 FMAs (fp32 accumulation)"),
    "dwconv_bwd_weight_wide_kernel": ("FFMA", "fp32 FMAs (16 taps per thread)"),
    "dwconv_bwd_weight_mma_kernel": ("HMMA", "tensor-core MMAs (rows as the GEMM's K)"),
}
COUNTED = ("HMMA", "HGMMA", "FFMA", "HFMA2", "LDS", "LDG", "STL", "LDL")


def find_cuobjdump() -> str:
    candidates = []
    try:
        import triton

        candidates.append(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump"))
    except ImportError:
        pass
    for root in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"):
        candidates.append(os.path.join(root, "bin", "cuobjdump"))
    candidates.append(shutil.which("cuobjdump") or "")
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise SystemExit("cuobjdump not found (it ships in the triton wheel and in the CUDA toolkit)")


def find_extension() -> str:
    import importlib.util

    spec = importlib.util.find_spec("replk_ops")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("replk_ops is not importable")
    found = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "_C*.so"))
    if not found:
        raise SystemExit("replk_ops._C was not built (no CUDA toolkit at install time?)")
    return found[0]


def run(tool: str, *args: str) -> str:
    return subprocess.run([tool, *args], check=True, capture_output=True, text=True).stdout


def resource_usage(tool: str, so: str):
    """{(arch, function): {REG, STACK, SHARED, LOCAL}}"""
    usage, arch, function = {}, None, None
    for line in run(tool, "--dump-resource-usage", so).splitlines():
        line = line.strip()
        if line.startswith("arch ="):
            arch = line.split("=", 1)[1].strip()
        elif line.startswith("Function "):
            function = line[len("Function "):].rstrip(":")
        elif line.startswith("REG:") and function:
            fields = dict(re.findall(r"(\w+(?:\[\d+\])?):(\d+)", line))
            usage[(arch, function)] = {k: int(fields.get(k, 0)) for k in ("REG", "STACK", "SHARED", "LOCAL")}
            function = None
    return usage


def instruction_mix(tool: str, so: str, arch: str):
    """{function: Counter(opcode family)} for one architecture."""
    mix, function = {}, None
    for line in run(tool, "--dump-sass", "-arch", arch, so).splitlines():
        header = re.match(r"\s*Function : (\S+)", line)
        if header:
            function = header.group(1)
            mix[function] = collections.Counter()
            continue
        if function is None:
            continue
        op = re.search(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)", line)
        if op:
            family = op.group(1)
            for name in COUNTED:
                if family == name or family.startswith(name + "_") or (name == "LDS" and family == "LDSM"):
                    mix[function][name] += 1
    return mix


def short(function: str) -> str:
    """dwconv_fwd_direct_kernel<f32,4> for the mangled name of dwconv_fwd_direct_kernel<float, 4>."""
    match = re.search(r"(dwconv_\w+?_kernel)I(13__nv_bfloat16|6__half|f)(?:Li(\d+)E)?", function)
    if not match:
        return function
    label = {"13__nv_bfloat16": "bf16", "6__half": "f16", "f": "f32"}[match.group(2)]
    extra = f",{match.group(3)}" if match.group(3) else ""
    return f"{match.group(1)}<{label}{extra}>"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--so", help="the built extension (default: replk_ops._C of the installed package)")
    parser.add_argument("--json", help="write the per-kernel report here")
    args = parser.parse_args(argv)
    tool, so = find_cuobjdump(), args.so or find_extension()
    usage = resource_usage(tool, so)
    archs = sorted({arch for arch, _ in usage})
    failures, rows = [], []
    for arch in archs:
        mix = instruction_mix(tool, so, arch)
        for (a, function), res in sorted(usage.items()):
            if a != arch:
                continue
            counts = mix.get(function, collections.Counter())
            row = {"arch": arch, "kernel": short(function), "function": function, **res,
                   "instructions": dict(counts)}
            rows.append(row)
            if res["STACK"] or res["LOCAL"]:
                failures.append(f"{arch} {short(function)}: {res['STACK']} B stack, {res['LOCAL']} B local memory (spills)")
            if counts["STL"] or counts["LDL"]:
                failures.append(f"{arch} {short(function)}: local-memory loads/stores in SASS")
            for fragment, (needed, meaning) in EXPECTED.items():
                if short(function).startswith(fragment + "<") and not counts[needed]:
                    failures.append(f"{arch} {short(function)}: no {needed} instructions; the design relies on {meaning}")
    kernels = {row["kernel"] for row in rows}
    for fragment in EXPECTED:
        if not any(k.startswith(fragment + "<") for k in kernels):
            failures.append(f"{fragment}: not found in {so}")
    print(f"{'arch':<6} {'kernel':<34} {'regs':>4} {'stack':>5} {'local':>5} {'static smem':>11}  instructions")
    for row in rows:
        ins = " ".join(f"{k}={v}" for k, v in sorted(row["instructions"].items()))
        print(f"{row['arch']:<6} {row['kernel']:<34} {row['REG']:>4} {row['STACK']:>5} {row['LOCAL']:>5} "
              f"{row['SHARED']:>11}  {ins}")
    print("(shared memory of these kernels is dynamic, sized per launch; the launchers opt in above 48 KiB)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"extension": so, "archs": archs, "kernels": rows, "failures": failures}, handle, indent=2)
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print(f"\nok: {len(rows)} kernels on {', '.join(archs)}: no spills, no local memory, expected instructions present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
