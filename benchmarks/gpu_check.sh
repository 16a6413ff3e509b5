#!/usr/bin/env bash
# Everything a lent GPU machine (no network) should do: build the extension in place against the
# installed torch, the GPU tests, compute-sanitizer memcheck and racecheck on a small case, each
# CUDA forward kernel and the Triton kernels' variants side by side (benchmarks/cuda_algos.py,
# triton_variants.py), where a batch-1 training step spends its host time (host_overhead.py),
# hardware counters of the stage-1 kernels (ncu on profile_kernels.py), the default bench with JSON
# and plot. The step limits add up to about 28 minutes, more than one lent session's device time:
# GPU_CHECK_STEPS="build cuda_tests ..." runs only the steps named, and several calls may share
# OUTDIR. At most 8 files go to OUTDIR (the test steps share tests.log; the kernel comparisons and
# the bench share bench.log).
# Usage: benchmarks/gpu_check.sh OUTDIR [bench arguments...]
set -uo pipefail
out=${1:?usage: benchmarks/gpu_check.sh OUTDIR [bench arguments...]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
py=${PYTHON:-python3}
summary="$out/summary.txt"
status=0
step() {  # [LOG=FILE] step NAME SECONDS CMD...: time-limited, appended to OUTDIR/FILE.log (default NAME)
    local name=$1 limit=$2; shift 2
    local start=$SECONDS log="$out/${LOG:-$name}.log"
    echo "== $name" >> "$log"
    timeout "$limit" "$@" >> "$log" 2>&1
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - start)) s" | tee -a "$summary"
    tail -n 3 "$log" | sed 's/^/   /' | tee -a "$summary"
    [ $rc -eq 0 ] || status=1
}

{ date -u; echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  $py -c "import torch, triton, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| triton', triton.__version__)"
  nvcc --version | tail -n 2; } >> "$summary" 2>&1  # appends: several invocations may share OUTDIR

want() { [ -z "${GPU_CHECK_STEPS:-}" ] || [[ " $GPU_CHECK_STEPS " == *" $1 "* ]]; }  # e.g. "build bench"

# setup.py picks a compiler of torch's GCC major version when CC/CXX are not set (see exceptions)
want build && step build 110 env -u CC -u CXX $py setup.py build_ext --inplace
# A C++ exception from the extension must reach Python as RuntimeError. If it crashes the process
# instead, the C++ toolchain is the suspect: rebuild with the system compiler and check again.
want exceptions && step exceptions 120 bash -c "$py benchmarks/exception_check.py && exit 0
    echo '-- crashed with the default compiler:'; command -v gcc g++ c++; gcc --version | head -n 1
    for cc in /usr/bin/gcc /usr/bin/gcc-13 /usr/bin/gcc-12; do [ -x \$cc ] || continue
        echo '-- rebuilding with' \$cc; cxx=\${cc/gcc/g++}
        CC=\$cc CXX=\$cxx $py setup.py build_ext --inplace --force > '$out/rebuild.txt' 2>&1 || { tail -n 5 '$out/rebuild.txt'; continue; }
        $py benchmarks/exception_check.py && exit 0
    done; exit 1"
rm -f "$out/rebuild.txt"
# Test runs touch many shapes: Triton's per-shape autotuning (a few compiles each) is off there;
# test_every_autotune_config_is_correct checks each tile, and the bench tunes as users do.
want cuda_tests && LOG=tests step cuda_tests 150 env REPLK_OPS_TRITON_AUTOTUNE=0 $py -m pytest -q -p no:cacheprovider -rs \
    tests/test_cuda_ext.py tests/test_gpu_reliability.py tests/test_reliability.py
want triton_tests && LOG=tests step triton_tests 300 env REPLK_OPS_TRITON_AUTOTUNE=0 $py -m pytest -q -p no:cacheprovider -rs \
    --maxfail=20 tests/test_triton.py
want fuzz && LOG=tests step fuzz 120 env REPLK_OPS_TRITON_AUTOTUNE=0 $py -m pytest -q -p no:cacheprovider tests/test_fuzz.py
cat > "$out/sanitize_case.py" <<'PY'
import torch, replk_ops
ops = torch.ops.replk_ops_C
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    x = torch.randn(2, 8, 20, 40, device="cuda", dtype=dtype)
    w = torch.randn(8, 1, 13, 13, device="cuda", dtype=dtype)
    b = torch.randn(8, device="cuda", dtype=dtype)
    for algo in ("direct", "direct_generic", "direct_rows") + (("mma_rows", "mma", "mma_warp") if dtype != torch.float32 else ()):
        y = ops.fwd(x, w, b, 6, 6, algo)
        ops.bwd_input(y, w, 6, 6, algo)
    ops.bwd_weight(y, x, 13, 13, 6, 6, True)
    ops.bwd_weight(y, x, 13, 13, 6, 6, True, "direct_wide")
    if dtype != torch.float32:
        ops.bwd_weight(y, x, 13, 13, 6, 6, True, "mma")
torch.cuda.synchronize()
print("ok")
PY
want sanitizer && step sanitizer 60 bash -c "compute-sanitizer --tool memcheck --error-exitcode 1 $py $out/sanitize_case.py && \
    compute-sanitizer --tool racecheck --error-exitcode 1 $py $out/sanitize_case.py"
rm -f "$out/sanitize_case.py"
want algos && LOG=bench step algos 90 $py benchmarks/cuda_algos.py
want triton_variants && LOG=bench step triton_variants 180 $py benchmarks/triton_variants.py
want host_overhead && LOG=bench step host_overhead 60 $py benchmarks/host_overhead.py
# Hardware counters of the stage-1 kernels (needs ncu with counter access; the clocks stay as they are)
want profile && LOG=bench step profile 180 ncu --clock-control none -k regex:dwconv --launch-count 11 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables \
    $py benchmarks/profile_kernels.py
want bench && step bench 420 bash -c "$py -m replk_ops.bench --budget 0.05 --json '$out/bench.json' --plot '$out/bench.png' $* &&
    $py -m replk_ops.bench --model replknet31b"
exit $status
