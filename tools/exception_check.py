"""Does a bad argument to the compiled ops raise a Python exception, or crash the process?

Each probe runs in a child process so a crash is reported instead of ending this script. Exit 0
when every probe raised a RuntimeError naming the argument; 1 otherwise. Needs a CUDA GPU.
"""
import subprocess
import sys

PROBES = {
    "weight shape": "ops.fwd(x, torch.randn(3, 1, 5, 5, device='cuda'), None, 2, 2)",
    "kernel size": "ops.fwd(x, torch.randn(4, 1, 65, 65, device='cuda'), None, 32, 32)",
    "algo name": "ops.fwd(x, torch.randn(4, 1, 5, 5, device='cuda'), None, 2, 2, 'fast')",
    "grad_out shape": "ops.bwd_weight(x[:, :, :8], x, 5, 5, 2, 2, False)",
}
TEMPLATE = """
import torch, replk_ops
ops = torch.ops.replk_ops_C
x = torch.randn(1, 4, 16, 16, device='cuda')
try:
    {call}
except RuntimeError as exc:
    print('raised:', str(exc).splitlines()[0])
else:
    print('no exception')
    raise SystemExit(1)
"""


def main() -> int:
    failed = 0
    for name, call in PROBES.items():
        done = subprocess.run([sys.executable, "-c", TEMPLATE.format(call=call)], capture_output=True, text=True)
        if done.returncode == 0:
            print(f"{name:<16} ok      {done.stdout.strip()}")
        else:
            failed += 1
            how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
            print(f"{name:<16} FAILED  {how}: {(done.stdout + done.stderr).strip().splitlines()[-1:] }")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
