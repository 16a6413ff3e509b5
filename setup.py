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
# repeat it (replk_ops/_compiled.py reads it).
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


def record(path: str = BUILD_INFO, **facts) -> None:
    """Add ``facts`` to a build-info file (the source tree's is created fresh by each build)."""
    info = probe.read_info(path)
    info.update(facts)
    try:
        with open(path, "w") as handle:
            json.dump(info, handle, indent=1)
    except OSError as exc:  # a read-only tree: the install goes on, explain gives a generic reason
        say(f"could not record {', '.join(facts)} in {path}: {exc}")


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
    import torch
    from torch.utils.cpp_extension import BuildExtension

    spare = choose_compiler(torch)
    return modules, {"build_ext": checking(BuildExtension.with_options(use_ninja=True), spare)}


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


RUNTIME_TEST = "#include <string>\nstd::string replk_ops_probe(long n) { return std::to_string(n); }\n"


def static_runtime(compiler: str):
    """Why ``compiler`` cannot build the extensions (it links the C++ runtime statically, so the
    library would carry a second runtime beside torch's: seen to crash in its first number
    formatting), or None; a tiny shared library tells."""
    import tempfile

    if sys.platform != "linux":
        return None  # the test reads ELF files; elsewhere the check after the build still runs
    with tempfile.TemporaryDirectory() as scratch:
        library = os.path.join(scratch, "runtime_test.so")
        try:
            done = subprocess.run([compiler, "-x", "c++", "-shared", "-fPIC", "-", "-o", library], input=RUNTIME_TEST,
                                  capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"it does not run ({exc})"
        if done.returncode != 0 or probe.needed_libraries(library) is None:
            return f"it cannot build a shared library ({done.stderr.strip()[-200:] or 'it made none'})"
        return probe.runtime_problem(library)


def compiler_candidates(wanted):
    """The C++ compilers to try, in order: CXX where set, else GCCs of torch's major version
    ``wanted`` before the others; then the system's (each once)."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else []
    found = [n for n in (f"g++-{wanted}" if wanted else "", "c++", "/usr/bin/g++", "g++", "clang++") if n]
    found.sort(key=lambda n: wanted is None or gcc_major(n) != wanted)  # stable: torch's GCC first
    chosen, seen = [], set()
    for name in names + found:
        path = shutil.which(name)
        if path and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            chosen.append(path)
    return chosen


def use_compiler(path: str) -> None:
    """Build with ``path`` from now on (torch's tooling and setuptools read CXX; nvcc's host
    compiler is CC)."""
    os.environ["CXX"] = path
    for cxx, cc in (("clang++", "clang"), ("g++", "gcc"), ("c++", "cc")):
        if os.path.basename(path).startswith(cxx) and shutil.which(path.replace(cxx, cc)):
            os.environ["CC"] = path.replace(cxx, cc)
            return


def describe_compiler(path: str, wanted, passed_over) -> str:
    have = gcc_major(path)
    text = f"with {path}" + (f" (GCC {have}" if have else " (not GCC") + (
        f"; torch's is GCC {wanted})" if wanted and have != wanted else ")")
    if passed_over:
        text += f", not {'; not '.join(passed_over)}"
    return text


def choose_compiler(torch, start: int = 0):
    """The remaining compiler candidates after picking the first that links the C++ runtime as a
    shared library (set in the environment and recorded for explain); [] if none does."""
    wanted = probe.gcc_major(torch.__config__.show())
    candidates = compiler_candidates(wanted)[start:]
    passed_over = []
    for index, path in enumerate(candidates):
        why = static_runtime(path)
        if why is None:
            use_compiler(path)
            described = describe_compiler(path, wanted, passed_over)
            say(f"building {described}")
            record(compiler=described)
            return candidates[index + 1:]
        passed_over.append(f"{path}: {why}")
        say(f"not building with {path}: {why}")
    return []


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
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPU")
    os.environ.setdefault("MAX_JOBS", max_jobs())
    say(f"building replk_ops._C with {cuda_home} for torch {torch.__version__}, archs {archs}, "
        f"MAX_JOBS={os.environ['MAX_JOBS']}")
    sources = sorted(glob.glob(os.path.join("csrc", "cuda", "**", "*.cpp"), recursive=True)) + sorted(
        glob.glob(os.path.join("csrc", "cuda", "**", "*.cu"), recursive=True))
    define = [("REPLK_OPS_CUDA_ARCHS", f'"{archs}"')]
    ext = CUDAExtension(
        name="replk_ops._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc", "cuda")],
        define_macros=define,
        extra_compile_args={
            "cxx": ["-O3"],
            "nvcc": ["-O3", "-lineinfo", "--expt-relaxed-constexpr"],
        },
    )
    return [ext]


KINDS = {CPU_EXTENSION: "_cpu", "replk_ops._C": "_C"}


def checking(build_ext, spare):
    """``build_ext`` that checks each library it built before the package may use it (a child
    process loads it and calls its ops: replk_ops/_probe.py) and records the verdict beside it.
    A library that fails is rebuilt with the next compiler of ``spare``; where none is left, or a
    build fails, the package installs without that module and records why."""
    class CheckingBuildExt(build_ext):
        build_only = False  # a rebuild run by the check itself

        def build_extension(self, ext):
            try:
                return super().build_extension(ext)
            except Exception as exc:  # any compiler failure: the package runs without this module
                self.failed = getattr(self, "failed", {})
                self.failed[ext.name] = f"{type(exc).__name__}: {str(exc).strip()[-300:]}"
                return None

        def run(self):
            super().run()
            if not self.build_only:
                for ext in self.extensions:
                    self.check(ext)

        def check(self, ext):
            import torch

            kind, library = KINDS[ext.name], self.get_ext_fullpath(ext.name)
            # where the import reads: beside the library, and the source tree's for in-place builds
            paths = sorted({os.path.join(os.path.dirname(library), "_build_info.json"), BUILD_INFO})
            wanted = probe.gcc_major(torch.__config__.show())
            remaining = list(spare)
            why = getattr(self, "failed", {}).get(ext.name)
            rejected = False  # a library was built and failed its check (the import then warns)
            while True:
                if why is None and os.path.isfile(library):
                    verdict, unrecorded = probe.check_and_record(kind, library, paths[0], torch.__version__)
                    for path in paths[1:]:
                        record(path, **{probe.KEY: probe.read_info(paths[0]).get(probe.KEY, {})})
                    if unrecorded and not verdict.startswith("not run"):
                        say(f"could not record the check of {ext.name} ({unrecorded}): the first import checks again")
                    if probe.usable(verdict):
                        say(f"{ext.name} checked in a child process: {verdict}")
                        return
                    why, rejected = f"checked in a child process, it {verdict}", True
                why = why or "the build made no library"
                say(f"{ext.name} is not usable: {why}")
                if not remaining:
                    break
                compiler = remaining.pop(0)
                problem = static_runtime(compiler)
                if problem is not None:
                    say(f"not rebuilding with {compiler}: {problem}")
                    continue
                say(f"rebuilding {ext.name} with {compiler}")
                rejected = False
                previous = os.environ.get("CXX", "c++")
                use_compiler(compiler)
                for path in paths:
                    record(path, compiler=describe_compiler(compiler, wanted, [f"{previous}, whose {ext.name} {why}"]))
                why = self.rebuild(ext)
            try:
                os.remove(library)
            except OSError:
                pass
            reason = f"no compiler made a usable library (the last: {why})"
            say(f"{reason}: installing without {ext.name}")
            for path in paths:
                kinds = set(probe.read_info(path).get("rejected", [])) | ({kind} if rejected else set())
                record(path, rejected=sorted(kinds), **{"cpu_skipped" if kind == "_cpu" else "skipped": reason})

        def rebuild(self, ext):
            """None once ``ext`` is rebuilt with the compiler now in the environment, else why not."""
            command = type(self)(self.distribution)  # a fresh command: it sets up its compiler from the environment
            for setting in ("inplace", "editable_mode"):
                if hasattr(self, setting):
                    setattr(command, setting, getattr(self, setting))
            command.force, command.build_only = True, True
            command.ensure_finalized()
            command.extensions = [ext]
            try:
                command.run()
            except Exception as exc:
                return f"{type(exc).__name__}: {str(exc).strip()[-300:]}"
            return getattr(command, "failed", {}).get(ext.name)

    return CheckingBuildExt


if __name__ == "__main__":  # pip's build backend runs this file as __main__; tests import its helpers
    ext_modules, cmdclass = extension_modules()
    setup(ext_modules=ext_modules, cmdclass=cmdclass)
