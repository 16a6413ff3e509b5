#!/usr/bin/env bash
# Everything a lent GPU machine (no network) should do, in one call of at most ~8 minutes:
# build the extension in place against the installed torch, the GPU tests, compute-sanitizer
# memcheck on a small case, the default bench with JSON and plot. Logs go to OUTDIR.
# Usage: benchmarks/gpu_check.sh OUTDIR
set -uo pipefail
out=${1:?usage: benchmarks/gpu_check.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
py=${PYTHON:-python3}
status=0
step() {  # step NAME SECONDS CMD...: run with a time limit, log to OUTDIR/NAME.log, keep going
    local name=$1 limit=$2; shift 2
    echo "== $name" | tee -a "$out/summary.txt"
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "   exit $rc" | tee -a "$out/summary.txt"
    [ $rc -eq 0 ] || status=1
}

{ date -u; git rev-parse HEAD; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv;
  $py -c "import torch, triton, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda, triton.__version__)"; } \
  > "$out/environment.txt" 2>&1
step build 240 $py setup.py build_ext --inplace
step tests 180 $py -m pytest -q -x -p no:cacheprovider tests/test_triton.py tests/test_reference_correctness.py \
    tests/test_op_registration.py tests/test_models.py
step memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 1 $py -c "
import torch, replk_ops
x = torch.randn(2, 8, 20, 40, device='cuda', requires_grad=True)
w = torch.randn(8, 1, 13, 13, device='cuda', requires_grad=True)
for backend in replk_ops.available_backends('cuda'):
    replk_ops.dwconv2d(x, w, backend=backend).sum().backward()
torch.cuda.synchronize(); print('ok', replk_ops.available_backends('cuda'))"
step bench 180 $py -m replk_ops.bench --passes all --json "$out/bench.json" --plot "$out/bench.png"
exit $status
