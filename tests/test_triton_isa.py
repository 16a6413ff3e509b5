"""Without a GPU, compile the Triton kernels for sm_80 and sm_90 and check the instruction mix
the design claims: tensor-core MMAs in every kernel, no stack use in the half-precision ones.
The compile runs in a subprocess because this test session runs Triton in interpreter mode."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "triton_isa_report.py"


@pytest.fixture(scope="module")
def rows():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_kernel_uses_tensor_cores(rows):
    assert len(rows) == 30  # 2 archs x 5 kernels (fwd both ways, dense fwd, bwd_weight both ways) x 3 dtypes
    for r in rows:
        assert r["wgmma"] + r["mma.sync"] > 0, r


def test_aligned_batch_row_tiles_load_vectors(rows):
    """On an aligned NCHW input the batch-row forward loads its input tile as 16-byte vectors
    (the group-row one cannot: its strip starts at an arbitrary column)."""
    for r in rows:
        if r["kernel"] == "fwd_batch" and r["dtype"] in ("fp16", "bf16"):
            assert r["vector_loads"] > 0, r


def test_half_precision_kernels_do_not_spill(rows):
    for r in rows:
        if r["dtype"] in ("fp16", "bf16"):
            assert r.get("STACK", 0) == 0 and r.get("LOCAL", 0) == 0, r
