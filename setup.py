"""Builds replk_ops, with its compiled CPU kernels replk_ops._cpu (a C++ compiler is enough; set
REPLK_OPS_SKIP_CPU_BUILD=1 to skip them) and the CUDA extension replk_ops._C when a CUDA toolkit and
a CUDA-enabled torch are present (set REPLK_OPS_SKIP_CUDA_BUILD=1 to skip it). Either may fail to
build without failing the install: the package falls back and says why. Use
``pip install --no-build-isolation .`` so the extensions are built against the torch that runs them."""
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;9.0"
# What the last build decided about replk_ops._C (left out and why; a compiler mismatch), installed
# as package data: pip hides this script's output without -v, so the import and replk_ops.explain
# repeat it (replk_ops/_extension.py reads it).
BUILD_INFO = os.path.join(ROOT, "replk_ops", "_build_info.json")


def _load_probe():
    """replk_ops/_probe.py by path: the package itself cannot be imported before it is built."""
    spec = importlib.util.spec_from_file_location("replk_ops_probe", os.path.join(ROOT, "replk_ops", "_probe.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


probe = _load_probe()


def say(message: str) -> None:
    print(f"replk_ops setup: {message}", file=sys.stderr)


def record(**facts) -> None:
    """Add ``facts`` to the build-info file (created fresh by each build)."""
    try:
        with open(BUILD_INFO) as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        info = {}
    info.update(facts)
    try:
        with open(BUILD_INFO, "w") as handle:
            json.dump(info, handle, indent=1)
    except OSError as exc:  # a read-only tree: the install goes on, explain gives a generic reason
        say(f"could not record {', '.join(facts)} in {BUILD_INFO}: {exc}")


def skip_extension(reason: str):
    """Install without the extension, saying why here and later in the import and replk_ops.explain."""
    say(f"{reason}: installing without the CUDA extension")
    record(skipped=reason)
    return []


CPU_EXTENSION = "replk_ops._cpu"
CPU_SOURCES = [os.path.join("csrc", "cpu", "dwconv_cpu.cpp"), os.path.join("csrc", "cpu", "dwconv3d_cpu.cpp")]


def skip_cpu_extension(reason: str):
    say(f"{reason}: installing without the compiled CPU kernels")
    record(cpu_skipped=reason)
    return []


def cpu_extension_modules():
    """replk_ops._cpu: plain C++ against torch's headers, no CUDA toolkit needed."""
    if os.environ.get("REPLK_OPS_SKIP_CPU_BUILD") == "1":
        return skip_cpu_extension("REPLK_OPS_SKIP_CPU_BUILD=1 was set at install time")
    try:
        from torch.utils.cpp_extension import CppExtension
    except ImportError as exc:
        return skip_cpu_extension(f"torch was not importable in the build environment ({exc})")
    # -Wno-psabi: the kernels pass 32-byte vectors between inlined helpers, which GCC notes for
    # the baseline (non-AVX) copy although no such value crosses a call
    return [CppExtension(name=CPU_EXTENSION, sources=CPU_SOURCES, extra_compile_args={"cxx": ["-O3", "-Wno-psabi"]})]


def extension_modules():
    """(ext_modules, cmdclass): the CPU kernels and the CUDA extension, each where it can be built."""
    try:
        os.remove(BUILD_INFO)
    except OSError:
        pass
    cuda_modules = cuda_extension_modules()  # first: it sets CUDA_HOME, which torch reads at import
    modules = cpu_extension_modules() + cuda_modules
    if not modules:
        return [], {}
    from torch.utils.cpp_extension import BuildExtension

    return modules, {"build_ext": probing(BuildExtension.with_options(use_ninja=True))}


def toolkit_version(cuda_home: str):
    """(major, minor) of the toolkit's nvcc, or None if it cannot tell."""
    try:
        out = subprocess.run([os.path.join(cuda_home, "bin", "nvcc"), "--version"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"release (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


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


def compiler_mismatch(chosen: str, have: int, wanted: int) -> None:
    """Say it now and record it for explain; the exception probe after the build says whether it matters."""
    message = f"built with GCC {have} ({chosen}) vs torch's GCC {wanted}"
    say(f"{message}: the build will check that C++ exceptions thrown in replk_ops._C still raise")
    record(compiler_mismatch=message)


def check_compiler(torch) -> None:
    """With some compiler pairs, a C++ exception thrown by an extension built with another GCC major
    version than torch's aborts the process instead of raising (seen: a GCC from /opt against
    torch's GCC 13 runtime). Pick a matching system compiler when CXX is not set; record a
    mismatch otherwise (the probe after the build checks the pair actually used)."""
    wanted = probe.gcc_major(torch.__config__.show())
    if wanted is None:
        return
    chosen = os.environ.get("CXX", "c++")
    have = gcc_major(chosen)
    if have is None or have == wanted:
        return
    if "CXX" in os.environ:
        compiler_mismatch(f"CXX={chosen}", have, wanted)
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
    compiler_mismatch(f"{chosen}; no GCC {wanted} found", have, wanted)


def cuda_extension_modules():
    """[replk_ops._C], empty when it cannot or should not be built (recorded: skip_extension)."""
    if os.environ.get("REPLK_OPS_SKIP_CUDA_BUILD") == "1":
        return skip_extension("REPLK_OPS_SKIP_CUDA_BUILD=1 was set at install time")
    cuda_home = find_cuda_home()
    if cuda_home is None:
        return skip_extension("no CUDA toolkit (nvcc) was found at install time")
    os.environ["CUDA_HOME"] = cuda_home  # read by torch.utils.cpp_extension at import
    try:
        import torch
        from torch.utils.cpp_extension import CUDAExtension
    except ImportError as exc:
        return skip_extension(f"torch was not importable in the build environment ({exc}); install with "
                              "`pip install --no-build-isolation .` with torch installed")
    if torch.version.cuda is None:
        return skip_extension(f"torch {torch.__version__} is a CPU-only build")
    # torch refuses (a RuntimeError that fails the whole install) a toolkit of another CUDA major
    # version than its own; install the rest and say how to get the extension instead
    toolkit = toolkit_version(cuda_home)
    torch_major = int(torch.version.cuda.split(".")[0])
    if toolkit is not None and toolkit[0] != torch_major:
        return skip_extension(
            f"the CUDA toolkit at {cuda_home} is CUDA {toolkit[0]}.{toolkit[1]}, but torch {torch.__version__} "
            f"was built with CUDA {torch.version.cuda}; to build replk_ops._C, reinstall with CUDA_HOME set to a "
            f"CUDA {torch_major}.x toolkit, or with a torch built for CUDA {toolkit[0]}")
    check_compiler(torch)
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPU")
    os.environ.setdefault("MAX_JOBS", max_jobs())
    say(f"building replk_ops._C with {cuda_home} for torch {torch.__version__}, archs {archs}, "
        f"MAX_JOBS={os.environ['MAX_JOBS']}")
    sources = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True)) + sorted(
        glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True))
    sources = [source for source in sources if source not in CPU_SOURCES]
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
    return [ext]


def probing(build_ext):
    """``build_ext`` that, once the CUDA extension is built, checks in a child process that a C++
    exception thrown inside it raises (replk_ops/_probe.py) and records the outcome beside it,
    where the wheel and the import pick it up; and that installs without the CPU kernels, saying
    why, when they fail to compile (an unusual compiler)."""
    class ProbingBuildExt(build_ext):
        def build_extension(self, ext):
            if ext.name != CPU_EXTENSION:
                return super().build_extension(ext)
            try:
                return super().build_extension(ext)
            except Exception as exc:  # any compiler failure: the package runs without them
                skip_cpu_extension(f"the compiled CPU kernels failed to build ({type(exc).__name__}: {exc})")
                return None

        def run(self):
            super().run()
            for ext in self.extensions:
                library = self.get_ext_fullpath(ext.name)
                if ext.name != CPU_EXTENSION and os.path.isfile(library):
                    report_probe(library)

    return ProbingBuildExt


def report_probe(library: str) -> None:
    result, unrecorded = probe.probe_and_record(library, os.path.join(os.path.dirname(library), "_build_info.json"))
    if unrecorded:
        say(f"could not record the exception probe's outcome ({unrecorded}): the first import probes again")
    if probe.failed(result):
        import torch

        gcc = probe.gcc_major(torch.__config__.show()) or "N"
        say(f"warning: a C++ exception thrown inside {library} {result} instead of raising, so the import will not "
            f"use the extension (CUDA calls run on the other backends; {probe.CPU_NOTE}); rebuild with the GCC "
            f"torch was built with (CXX=g++-{gcc} CC=gcc-{gcc})")
    else:
        say(f"C++ exceptions thrown inside replk_ops._C: {result}")


if __name__ == "__main__":  # pip's build backend runs this file as __main__; tests import its helpers
    ext_modules, cmdclass = extension_modules()
    setup(ext_modules=ext_modules, cmdclass=cmdclass)
