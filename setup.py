"""Builds replk_ops, with the CUDA extension replk_ops._C when a CUDA toolkit and a CUDA-enabled
torch are present (set REPLK_OPS_SKIP_CUDA_BUILD=1 to skip it). Use
``pip install --no-build-isolation .`` so the extension is built against the torch that runs it."""
import glob
import os
import re
import shutil
import subprocess
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


def gcc_major(compiler: str):
    """The GCC major version of ``compiler``, or None if it is not GCC or cannot run."""
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        if "Free Software Foundation" not in out:
            return None
        version = subprocess.run([compiler, "-dumpversion"], capture_output=True, text=True, timeout=30).stdout
        return int(version.strip().split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def check_compiler(torch) -> None:
    """C++ exceptions thrown by an extension built with another GCC major version than torch's can
    crash the process instead of raising (seen: a GCC from /opt against torch's GCC 13 runtime).
    Pick a matching system compiler when CXX is not set; warn when it is set to a mismatch."""
    match = re.search(r"GCC (\d+)", torch.__config__.show())
    if not match:
        return
    wanted = int(match.group(1))
    chosen = os.environ.get("CXX", "c++")
    have = gcc_major(chosen)
    if have is None or have == wanted:
        return
    if "CXX" in os.environ:
        say(f"warning: CXX={chosen} is GCC {have} but torch was built with GCC {wanted}; if errors raised by "
            f"replk_ops._C crash Python, rebuild with CXX=g++-{wanted} CC=gcc-{wanted} (or another GCC {wanted})")
        return
    for cxx in (f"g++-{wanted}", "/usr/bin/g++", "g++"):
        path = shutil.which(cxx)
        if path and gcc_major(path) == wanted:
            os.environ["CXX"] = path
            cc = path.replace("g++", "gcc")
            if shutil.which(cc):
                os.environ.setdefault("CC", cc)
            say(f"using {path} (GCC {wanted}, like torch) instead of {chosen} (GCC {have})")
            return
    say(f"warning: {chosen} is GCC {have} but torch was built with GCC {wanted}; no GCC {wanted} found")


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
    check_compiler(torch)
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
