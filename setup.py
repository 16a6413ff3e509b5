"""Builds replk_ops, with the CUDA extension replk_ops._C when a CUDA toolkit and a CUDA-enabled
torch are present (set REPLK_OPS_SKIP_CUDA_BUILD=1 to skip it). Use
``pip install --no-build-isolation .`` so the extension is built against the torch that runs it."""
import glob
import os
import re
import shutil
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;9.0"


def say(message: str) -> None:
    print(f"replk_ops setup: {message}", file=sys.stderr)


def is_cuda_home(path: str) -> bool:
    return bool(path) and os.path.isfile(os.path.join(path, "bin", "nvcc")) and os.path.isfile(
        os.path.join(path, "include", "cuda_runtime.h"))


def find_cuda_home():
    """The real toolkit root, even when the nvcc on PATH is a wrapper script elsewhere."""
    candidates = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", "")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        real = os.path.realpath(nvcc)
        candidates.append(os.path.dirname(os.path.dirname(real)))
        try:
            with open(real, "rb") as handle:
                head = handle.read(4096)
            if head.startswith(b"#!"):  # a wrapper: look for the nvcc it runs
                for match in re.findall(rb"(/[^\s\"']+)/bin/nvcc", head):
                    candidates.append(match.decode())
        except OSError:
            pass
    candidates += sorted(glob.glob("/usr/local/cuda*"), reverse=True) + ["/opt/cuda"]
    return next((c for c in candidates if is_cuda_home(c)), None)


def max_jobs() -> str:
    cores = os.cpu_count() or 1
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gib = 8
    return str(max(1, min(cores, int(mem_gib // 3))))  # nvcc on torch headers takes ~2-3 GiB a job


def extension_modules():
    """(ext_modules, cmdclass), empty when the extension cannot or should not be built."""
    if os.environ.get("REPLK_OPS_SKIP_CUDA_BUILD") == "1":
        say("REPLK_OPS_SKIP_CUDA_BUILD=1: installing without the CUDA extension")
        return [], {}
    cuda_home = find_cuda_home()
    if cuda_home is None:
        say("no CUDA toolkit (nvcc) found: installing without the CUDA extension")
        return [], {}
    os.environ["CUDA_HOME"] = cuda_home  # read by torch.utils.cpp_extension at import
    try:
        import torch
        from torch.utils.cpp_extension import BuildExtension, CUDAExtension
    except ImportError as exc:
        say(f"torch is not importable in the build environment ({exc}); installing without the CUDA "
            "extension. Use `pip install --no-build-isolation .` with torch installed.")
        return [], {}
    if torch.version.cuda is None:
        say(f"torch {torch.__version__} is a CPU-only build: installing without the CUDA extension")
        return [], {}
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPU")
    os.environ.setdefault("MAX_JOBS", max_jobs())
    say(f"building replk_ops._C with {cuda_home} for torch {torch.__version__}, archs {archs}, "
        f"MAX_JOBS={os.environ['MAX_JOBS']}")
    sources = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True)) + sorted(
        glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True))
    define = [("REPLK_OPS_CUDA_ARCHS", f'"{archs}"')]
    ext = CUDAExtension(
        name="replk_ops._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        define_macros=define,
        extra_compile_args={
            "cxx": ["-O3"],
            "nvcc": ["-O3", "-lineinfo", "--expt-relaxed-constexpr"],
        },
    )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = extension_modules()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
