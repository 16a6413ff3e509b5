#!/usr/bin/env bash
# One short run on a GPU machine (no network needed) that verifies everything and times the cold
# start; it ends within 9 minutes on an H200 (each step has a time limit; they add up to at most
# 540 s). In order:
#   build        the extension in place against the installed torch (MAX_JOBS = the core count;
#                setup.py checks the library it built), then what the loader and explain report
#   tests        the GPU test modules in parallel (pytest-xdist), Triton tuning off as in CI
#   sanitizer    compute-sanitizer memcheck and racecheck on every algo of the extension's table
#   algos        benchmarks/cuda_algos.py: each CUDA kernel side by side
#   first_step_* benchmarks/first_step.py: RepLKNet-31B's first training step (bf16 autocast,
#                batch 64) against a steady one, cold (empty tuning and Triton caches), then warm
#   model_*      the model bench (--model replknet31b), cold (its own empty caches), then warm
#   bench_*      the layer bench (fp32 and bf16, batch 64 and 1, every pass), cold, then warm
# Longer steps run only when named in GPU_CHECK_STEPS: triton_variants, host_overhead, profile
# (ncu). GPU_CHECK_STEPS="build tests" runs only those; GPU_CHECK_DRY_RUN=1 lists the steps and
# their limits and runs nothing.
# Usage: benchmarks/gpu_check.sh [OUTDIR]   (default benchmarks/results/<date>_<gpu>_<commit>/)
# OUTDIR receives at most 8 files: README.md (what passed, the timings, versions and commit),
# build.log, tests.log, checks.log, bench.log, bench.json, first_step_cold.json, first_step_warm.json.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
py=${PYTHON:-python3}
cores=$(nproc 2>/dev/null || echo 4)

# name limit(s) log: the default steps, in order (the limits add up to at most 540 s)
DEFAULT_STEPS="
build 60 build
tests 75 tests
sanitizer 30 checks
algos 15 checks
first_step_cold 60 bench
first_step_warm 15 bench
model_cold 70 bench
model_warm 30 bench
bench_cold 125 bench
bench_warm 55 bench
"
ON_REQUEST_STEPS="
triton_variants 180 bench
host_overhead 60 bench
profile 180 bench
"

run_step() {  # the command of step $1
    case $1 in
    build) MAX_JOBS=$cores $py setup.py build_ext --inplace && $py - <<'PY'
import torch, replk_ops
from replk_ops.backends.cuda import loader as _extension
print("replk_ops._C:", _extension.STATUS.reason, _extension.note())
if torch.cuda.is_available():
    x = torch.randn(2, 8, 28, 28, device="cuda", dtype=torch.bfloat16)
    print(replk_ops.explain(x, torch.randn(8, 1, 13, 13, device="cuda", dtype=torch.bfloat16)))
PY
    ;;
    tests) REPLK_OPS_TRITON_AUTOTUNE=0 $py -m pytest -q -p no:cacheprovider -rs -n "$(( cores < 12 ? cores : 12 ))" \
        -m "gpu or not slow" tests/test_cuda_ext.py tests/test_gpu_reliability.py tests/test_reliability.py \
        tests/test_triton.py tests/test_fuzz.py tests/test_fft.py tests/test_dilation.py ;;
    sanitizer) compute-sanitizer --tool memcheck --error-exitcode 1 $py "$scratch/every_algo.py" &&
        compute-sanitizer --tool racecheck --error-exitcode 1 $py "$scratch/every_algo.py" ;;
    algos) $py benchmarks/cuda_algos.py ;;
    first_step_cold) in_caches "$scratch/first" $py benchmarks/first_step.py --json "$out/first_step_cold.json" ;;
    first_step_warm) in_caches "$scratch/first" $py benchmarks/first_step.py --json "$out/first_step_warm.json" ;;
    model_cold|model_warm) in_caches "$scratch/model" $py -m replk_ops.bench --model replknet31b ;;
    bench_cold) in_caches "$scratch/bench" $py -m replk_ops.bench --passes all --budget 0.02 --no-overhead ;;
    bench_warm) in_caches "$scratch/bench" $py -m replk_ops.bench --passes all --budget 0.02 --no-overhead \
        --json "$out/bench.json" ;;
    triton_variants) $py benchmarks/triton_variants.py ;;
    host_overhead) $py benchmarks/host_overhead.py ;;
    profile) ncu --clock-control none -k regex:dwconv --launch-count 11 --section SpeedOfLight --section Occupancy \
        --section LaunchStats --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis \
        --section MemoryWorkloadAnalysis_Tables $py benchmarks/profile_kernels.py ;;
    esac
}

in_caches() {  # in_caches DIR CMD...: CMD with the tuning cache and Triton's compile cache in DIR
    local dir=$1; shift
    REPLK_OPS_CACHE_DIR="$dir/replk_ops" TRITON_CACHE_DIR="$dir/triton" "$@"
}

selected() {  # the steps to run: name limit log per line
    if [ -z "${GPU_CHECK_STEPS:-}" ]; then echo "$DEFAULT_STEPS"; return; fi
    local name
    for name in $GPU_CHECK_STEPS; do
        printf '%s\n%s\n' "$DEFAULT_STEPS" "$ON_REQUEST_STEPS" | awk -v n="$name" '$1 == n'
    done
}
for name in ${GPU_CHECK_STEPS:-}; do
    GPU_CHECK_STEPS=$name selected | grep -q . || { echo "GPU_CHECK_STEPS: no step named $name" >&2; exit 2; }
done

if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
    selected | awk 'NF { print $1, $2 " s", "-> " $3 ".log"; total += $2 } END { print "total", total " s" }'
    echo "on request (GPU_CHECK_STEPS):"; echo "$ON_REQUEST_STEPS" | awk 'NF { print "  " $1, $2 " s" }'
    exit 0
fi

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | sed 's/^NVIDIA //; s/[^A-Za-z0-9]\+/-/g')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
out=${1:-benchmarks/results/$(date -u +%Y-%m-%d)_${gpu:-gpu}_$commit}
mkdir -p "$out" && out=$(cd "$out" && pwd)
scratch=$(mktemp -d) && trap 'rm -rf "$scratch"' EXIT
cat > "$scratch/every_algo.py" <<'PY'
# every algo of the extension's table, each dtype it lists, on a small case (for compute-sanitizer)
import json, torch, replk_ops
ops = torch.ops.replk_ops_C
cc = torch.cuda.get_device_capability()
for row in json.loads(ops.algo_table()):
    if row.get("min_cc", 0) > cc[0] * 10 + cc[1]:
        continue
    for name in row["dtypes"]:
        dtype = getattr(torch, name)
        x = torch.randn(2, 8, 20, 40, device="cuda", dtype=dtype)
        w = torch.randn(8, 1, 13, 13, device="cuda", dtype=dtype)
        if row["pass"] == "fwd":
            ops.fwd(x, w, torch.randn(8, device="cuda", dtype=dtype), 6, 6, row["algo"])
        elif row["pass"] == "bwd_input":
            ops.bwd_input(x, w, 6, 6, row["algo"])
        else:
            ops.bwd_weight(x, x, 13, 13, 6, 6, True, row["algo"])
        print(row["pass"], row["algo"], name)
torch.cuda.synchronize()
print("ok")
PY

results=()
status=0
while read -r name limit log; do
    [ -n "$name" ] || continue
    start=$SECONDS
    echo "== $name (limit $limit s)" >> "$out/$log.log"
    ( timeout "$limit" bash -c "$(declare -f run_step in_caches); py='$py' cores=$cores scratch='$scratch' out='$out'; run_step $name" ) \
        >> "$out/$log.log" 2>&1
    rc=$?
    took=$((SECONDS - start))
    verdict=$([ $rc -eq 0 ] && echo passed || { [ $rc -eq 124 ] && echo "over its limit" || echo "failed (exit $rc)"; })
    echo "== $name: $verdict in $took s" | tee -a "$out/$log.log"
    results+=("| $name | $verdict | $took s | $limit s | $log.log |")
    [ $rc -eq 0 ] || status=1
done < <(selected)

{
    echo "# GPU check, $(date -u +%Y-%m-%d), commit $commit"
    echo
    echo "Run with \`benchmarks/gpu_check.sh\`${GPU_CHECK_STEPS:+ (GPU_CHECK_STEPS=\"$GPU_CHECK_STEPS\")}."
    echo "Cold steps start from empty tuning and Triton caches; the warm step after each reuses them."
    echo
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/- GPU: /'
    $py -c "import sys, torch, triton; print(f'- python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, triton {triton.__version__}')" 2>&1
    nvcc --version 2>/dev/null | tail -n 1 | sed 's/^/- nvcc: /'
    echo
    echo "| step | result | wall time | limit | log |"
    echo "| --- | --- | --- | --- | --- |"
    printf '%s\n' "${results[@]}"
    echo
    for f in "$out"/first_step_*.json; do [ -f "$f" ] && echo "- $(basename "$f"): $(tr -d '\n' < "$f")"; done
    grep -h "passed\|failed" "$out/tests.log" 2>/dev/null | tail -n 1 | sed 's/^/- tests: /'
} > "$out/README.md"
cat "$out/README.md"
exit $status
