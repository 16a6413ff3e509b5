"""Without a GPU, compile the Triton kernels for sm_80 and sm_90 and check the instruction mix
the design claims: tensor-core MMAs in every kernel, no stack use in the half-precision ones.
The compile runs in a subprocess because this test session runs Triton in interpreter mode."""
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
from triton.compiler import ASTSource  # noqa: E402
from conv_testing import HANG_GUARD_S  # noqa: E402

# The report compiles through Triton's ahead-of-time API, whose arguments changed after triton
# 3.0 (the kernels themselves run on 3.0; only this check of their compiled code needs the newer API).
if "constexprs" not in inspect.signature(ASTSource.__init__).parameters:
    pytest.skip("the ISA report compiles through ASTSource(constexprs=...), which triton "
                f"{__import__('triton').__version__} lacks", allow_module_level=True)
SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "triton_isa_report.py"


def _report(directory: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, env=env,
                          timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-2000:]
    Path(directory, "rows.json").write_text(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def rows(built_once):
    """The report (a minute of compiling) runs once per run, whichever pytest-xdist workers the
    tests go to."""
    return json.loads((built_once("triton_isa_report", _report) / "rows.json").read_text())


def test_every_kernel_uses_tensor_cores(rows):
    # 2 archs x 3 dtypes x 8 kernels: the forward (group rows; batch rows on aligned and unaligned
    # inputs; the dense GEMM) and the weight gradient (group rows both ways; batch rows, aligned
    # and unaligned)
    assert len(rows) == 48
    for r in rows:
        assert r["wgmma"] + r["mma.sync"] > 0, r


def test_aligned_batch_row_tiles_load_vectors(rows):
    """On an aligned NCHW input the batch-row kernels load their tiles as vectors (the group-row
    ones cannot: a tile's rows come from arbitrary images and rows, its strip starts at an
    arbitrary column)."""
    checked = 0
    for r in rows:
        if r["kernel"] in ("fwd_batch", "bwd_weight_batch") and r["dtype"] in ("fp16", "bf16"):
            assert r["vector_loads"] > 0, r
            checked += 1
    assert checked == 8


def test_half_precision_kernels_do_not_spill(rows):
    for r in rows:
        if r["dtype"] in ("fp16", "bf16"):
            assert r.get("STACK", 0) == 0 and r.get("LOCAL", 0) == 0, r
