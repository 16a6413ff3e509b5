"""The CUDA kernels of csrc/cuda/ run on the CPU through tests/host_emulation, against the float64
reference: the CUDA-core ones (forward and input gradient, algos direct, direct_generic and
direct_rows; weight gradient, algos direct and direct_wide) and the tensor-core ones (forward and
input gradient, algos mma_rows, mma and mma_warp; weight gradient, algo mma). ldmatrix and
mma.sync are emulated lane by lane from the PTX fragment layouts, nvcuda::wmma with opaque
whole-tile fragments. The same source, tilings and launchers as the extension; every CUDA thread
is an OS thread and every __syncthreads / __syncwarp a barrier. Outputs, partial sums and shared
memory start as NaN. A ThreadSanitizer build checks the kernels' shared memory for races, like
compute-sanitizer's racecheck on a GPU. The emulation links the extension's algo table and choice
units, so the table and "auto"'s choice are tested here too."""
import os

import pytest
import torch

from conv_testing import KERNEL_PATH_CASES, assert_close_to_reference, conv64, grads64, torch_same_dtype
import cuda_on_cpu
from replk_ops.backends import cuda as cuda_backend
from replk_ops._checks import padding_pair
from replk_ops.backends.cuda import runner as cuda

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
HALF = [torch.bfloat16, torch.float16]
DIRECT_CASES = KERNEL_PATH_CASES + [
    (1, 2, 12, 26, 5, 63, "same"),        # the widest kernel: eight 8-tap chunks
    (2, 2, 8, 72, 5, 9, "same"),          # two column tiles of the weight gradient
]
# The tensor-core kernels: mma_rows (phases R = 1, 2, 4; Toeplitz offsets DDH 0 to 8; one to four
# warps), the WMMA warp and block tiles, and the weight gradient (kernel rows per warp KR and
# column blocks NB over kw 1 to 63; several row steps; maps smaller than the kernel).
MMA_CASES = [
    (1, 2, 20, 37, 7, 7, "same"),         # R = 2, two warps
    (2, 1, 40, 24, 5, 13, "same"),        # R = 4, images of several row tiles, DDH 2
    (1, 1, 20, 30, 5, 21, "same"),        # DDH 3, NB 6
    (1, 1, 12, 40, 5, 37, "same"),        # DDH 5, NB 8
    (1, 1, 12, 50, 5, 45, "same"),        # DDH 6, two warps
    (1, 2, 9, 11, 3, 3, "same"),          # R = 1
    (2, 2, 10, 9, 31, 31, "same"),        # map far smaller than the kernel, DDH 4
    (1, 1, 18, 70, 5, 63, "same"),        # the widest kernel: DDH 8, NB 10, three warps
    (1, 1, 34, 20, 3, 1, "same"),         # kw 1: DDH 0, NB 2
    (1, 2, 12, 26, 5, 51, "same"),        # DDH 7, KR 2 with NB 8
    (1, 1, 70, 9, 63, 3, "same"),         # the tallest kernel: two kernel-row groups of the weight gradient
    (1, 2, 11, 13, 4, 6, (2, 1)),         # even kernel, explicit padding
    (1, 1, 6, 7, 3, 5, (4, 6)),           # padding wider than the kernel
]
# (Shapes chosen where PyTorch's own fp16 conv on CPU, the half-precision yardstick, finishes: it
# does not, within minutes, for some wide kernels on wider maps, e.g. 1x2x9x40 with a 3x17 kernel.)
LAYOUTS = ["nchw", "channels_last", "moat"]



def case_id(case):
    return "x".join(map(str, case[:6])) + f"-p{case[6]}"


@pytest.fixture(scope="module")
def toolchain(tmp_path_factory):
    """Skips where the emulation cannot be built (no nvcc headers, no C++20 compiler), except
    where REPLK_OPS_EXPECT_EXTENSION=1 says the toolchain is there (CI): then it fails."""
    missing = cuda_on_cpu.missing_toolchain(str(tmp_path_factory.mktemp("toolchain")))
    if missing is not None:
        if os.environ.get("REPLK_OPS_EXPECT_EXTENSION") == "1":
            pytest.fail(f"REPLK_OPS_EXPECT_EXTENSION=1 but {missing}")
        pytest.skip(missing)


@pytest.fixture(scope="module")
def kernels(toolchain, built_once):
    """Built once per run, whichever pytest-xdist workers this module's tests go to."""
    return cuda_on_cpu.load(str(built_once("emulated_kernels", cuda_on_cpu.compile_kernels)))


def moated(t: torch.Tensor, layout: str) -> torch.Tensor:
    """``t`` in ``layout``; "moat" is a view inside a NaN-filled buffer, so any read outside the
    view's elements poisons the result."""
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "moat":
        n, c, h, w = t.shape
        big = torch.full((n + 1, c + 2, h + 3, 2 * w + 3), float("nan"), dtype=t.dtype)
        view = big[1:, 1:-1, 2:-1, 1:-2:2]
        view.copy_(t)
        return view
    return t.contiguous()


def _problem(case, dtype):
    n, c, h, w, kh, kw, padding = case
    ph, pw = padding_pair(padding, (kh, kw))
    ho, wo = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    x = torch.randn(n, c, h, w, dtype=torch.float64).to(dtype)
    weight = (torch.randn(c, 1, kh, kw, dtype=torch.float64) / (kh * kw) ** 0.5).to(dtype)
    bias = torch.randn(c, dtype=torch.float64).to(dtype)
    grad_out = torch.randn(n, c, ho, wo, dtype=torch.float64).to(dtype)
    ref = (conv64(x, weight, bias, (ph, pw)),) + grads64(x, weight, bias, (ph, pw), grad_out)
    yard = torch_same_dtype(x, weight, bias, (ph, pw), grad_out) if dtype != torch.float32 else (None,) * 4
    return x, weight, bias, grad_out, (ph, pw), ref, yard


def check_all_passes(kernels, case, dtype, layout, forward_algos, weight_algos):
    """Every forward algo (forward and input gradient) and weight-gradient algo against float64,
    with inputs in ``layout`` and outputs in the matching memory format."""
    x, weight, bias, grad_out, (ph, pw), (ref_y, ref_dx, ref_dw, ref_db), (ty, tdx, tdw, tdb) = _problem(case, dtype)
    xs, gs = moated(x, layout), moated(grad_out, layout)
    out_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    for algo in forward_algos:
        y = kernels.fwd(xs, weight, bias, ph, pw, algo, out_format)
        assert_close_to_reference(y, ref_y, dtype, ty, f"output ({algo})")
        dx = kernels.bwd_input(gs, weight, ph, pw, algo, out_format)
        assert_close_to_reference(dx, ref_dx, dtype, tdx, f"grad x ({algo})")
    for algo in weight_algos:
        dw, db = kernels.bwd_weight(gs, xs, weight.shape[2], weight.shape[3], ph, pw, algo)
        assert_close_to_reference(dw, ref_dw, dtype, tdw, f"grad weight ({algo})")
        assert_close_to_reference(db, ref_db, dtype, tdb, f"grad bias ({algo})")


def test_emulation_orders_barriers_and_poisons_shared_memory(kernels):
    out = kernels.self_check(blocks=3, threads=96)
    assert torch.equal(out[..., 0], torch.tensor([1.0, 2.0, 3.0])[:, None].expand(3, 96))
    assert out[..., 1].isnan().all()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("case", DIRECT_CASES, ids=case_id)
def test_direct_kernels_match_float64(kernels, case, dtype, layout):
    check_all_passes(kernels, case, dtype, layout, kernels.algos("fwd", dtype, tensor_cores=False),
                     kernels.algos("bwd_weight", dtype, tensor_cores=False))


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("case", MMA_CASES, ids=case_id)
def test_tensor_core_kernels_match_float64(kernels, case, dtype):
    layout = LAYOUTS[MMA_CASES.index(case) % len(LAYOUTS)]  # each layout on a third of the cases
    check_all_passes(kernels, case, dtype, layout, kernels.algos("fwd", dtype, tensor_cores=True),
                     kernels.algos("bwd_weight", dtype, tensor_cores=True))


@pytest.mark.parametrize("algo,dtype", [("direct", torch.float32), ("direct_wide", torch.float32),
                                        ("mma", torch.bfloat16)])
def test_weight_gradient_over_many_tiles_is_bitwise_deterministic(kernels, algo, dtype):
    """With one SM's worth of splits each block sums several tiles (and row steps) in a fixed
    order: right, and bitwise the same on a second run."""
    x, weight, bias, grad_out, (ph, pw), (_, _, ref_dw, ref_db), (_, _, tdw, tdb) = _problem(
        (3, 2, 35, 20, 9, 17, "same"), dtype)
    kernels.set_sm_count(1)
    try:
        dw, db = kernels.bwd_weight(grad_out, x, 9, 17, ph, pw, algo)
        again = kernels.bwd_weight(grad_out, x, 9, 17, ph, pw, algo)
    finally:
        kernels.set_sm_count(132)
    assert_close_to_reference(dw, ref_dw, dtype, tdw, "grad weight")
    assert_close_to_reference(db, ref_db, dtype, tdb, "grad bias")
    assert torch.equal(dw, again[0]) and torch.equal(db, again[1])


def test_no_shared_memory_races_or_misaligned_vector_accesses(toolchain, tmp_path):
    done = cuda_on_cpu.race_check(str(tmp_path))
    assert done.returncode == 0, f"race check (exit {done.returncode}):\n{done.stderr[-6000:]}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=lambda d: str(d)[6:])
def test_offsets_past_two_to_the_31_elements(kernels, dtype):
    """Inputs whose second image starts 2^31 + 64 elements in: the kernels' 64-bit offsets must
    reach it (32-bit ones would wrap to the wrong memory). The buffers are mostly untouched
    virtual memory, so this costs no RAM."""
    x, weight, bias, grad_out, (ph, pw), (ref_y, ref_dx, ref_dw, ref_db), (ty, tdx, tdw, tdb) = _problem(
        (2, 2, 9, 11, 5, 7, "same"), dtype)

    def far_apart(t):
        big = torch.empty_strided(t.shape, (2**31 + 64,) + t.stride()[1:], dtype=t.dtype)
        big.copy_(t)
        return big

    xs, gs = far_apart(x), far_apart(grad_out)
    for algo in kernels.algos("fwd", dtype):
        assert_close_to_reference(kernels.fwd(xs, weight, bias, ph, pw, algo), ref_y, dtype, ty, f"output ({algo})")
        assert_close_to_reference(kernels.bwd_input(gs, weight, ph, pw, algo), ref_dx, dtype, tdx, f"grad x ({algo})")
    for algo in kernels.algos("bwd_weight", dtype):
        dw, db = kernels.bwd_weight(gs, xs, 5, 7, ph, pw, algo)
        assert_close_to_reference(dw, ref_dw, dtype, tdw, f"grad weight ({algo})")
        assert_close_to_reference(db, ref_db, dtype, tdb, f"grad bias ({algo})")


def test_fuzz_every_kernel_against_float64(kernels):
    """Random shapes, paddings, layouts and dtypes (tests/fuzz_cases.py) through every kernel that
    takes them: forward and input gradient of each forward algo, each weight-gradient algo."""
    hypothesis = pytest.importorskip("hypothesis")
    from conv_testing import make_input
    from fuzz_cases import conv_cases

    @hypothesis.given(case=conv_cases())
    def run(case):
        dtype, (ph, pw) = case["dtype"], case["pad"]
        x = make_input(case["n"], case["c"], case["h"], case["w"], dtype, layout=case["layout"])
        weight = (torch.randn(case["c"], 1, case["kh"], case["kw"], dtype=torch.float64)
                  / (case["kh"] * case["kw"]) ** 0.5).to(dtype)
        bias = torch.randn(case["c"], dtype=torch.float64).to(dtype) if case["bias"] else None
        ho, wo = case["h"] + 2 * ph - case["kh"] + 1, case["w"] + 2 * pw - case["kw"] + 1
        grad_out = make_input(case["n"], case["c"], ho, wo, dtype, layout=case["layout"])
        ref_y = conv64(x, weight, bias, (ph, pw))
        ref_dx, ref_dw, ref_db = grads64(x, weight, bias, (ph, pw), grad_out)
        half = dtype != torch.float32
        ty, tdx, tdw, tdb = torch_same_dtype(x, weight, bias, (ph, pw), grad_out) if half else (None,) * 4
        for algo in kernels.algos("fwd", dtype):
            assert_close_to_reference(kernels.fwd(x, weight, bias, ph, pw, algo), ref_y, dtype, ty,
                                      f"output ({algo}, {case})")
            assert_close_to_reference(kernels.bwd_input(grad_out, weight, ph, pw, algo), ref_dx, dtype, tdx,
                                      f"grad x ({algo}, {case})")
        for algo in kernels.algos("bwd_weight", dtype):
            dw, db = kernels.bwd_weight(grad_out, x, case["kh"], case["kw"], ph, pw, algo)
            assert_close_to_reference(dw, ref_dw, dtype, tdw, f"grad weight ({algo}, {case})")
            if bias is not None:
                assert_close_to_reference(db, ref_db, dtype, tdb, f"grad bias ({algo}, {case})")

    run()


# The algo table and the choice (csrc/cuda/algo_table.cpp, algo_choice.cpp), linked into the emulation
# like into the extension.
TABLE_KEYS = {"pass", "algo", "dtypes", "min_cc", "verified_on_gpu", "auto", "auto_min_side", "max_kernel",
              "description"}
# RepLKNet-31B's stages (channels, map side, kernel) and what "auto" ran for them on an H100-sized
# GPU before the choice moved into the algo table's unit (it was in the op layer, dwconv_ops.cpp:
# for fp16/bf16 mma_rows on maps over 16 whose tiles fit, mma on maps over 8, else direct; direct
# for fp32 and for the weight gradient).
STAGES = [(128, 56, 31), (256, 28, 29), (512, 14, 27), (1024, 7, 13)]
AUTO_BEFORE = {
    (torch.float32, 56): "direct", (torch.float32, 28): "direct", (torch.float32, 14): "direct",
    (torch.float32, 7): "direct",
    (torch.bfloat16, 56): "mma_rows", (torch.bfloat16, 28): "mma_rows", (torch.bfloat16, 14): "mma",
    (torch.bfloat16, 7): "direct",
}


def test_algo_table_rows(kernels):
    rows = kernels.table
    assert rows and all(set(row) == TABLE_KEYS for row in rows)
    assert len({(row["pass"], row["algo"]) for row in rows}) == len(rows)
    assert {row["pass"] for row in rows} == {"fwd", "bwd_input", "bwd_weight"}
    assert {row["max_kernel"] for row in rows} == {63}  # BK = next_pow2(BN + k - 1) <= 128 at BN = 32
    assert all(set(row["dtypes"]) <= {"float32", "float16", "bfloat16"} and row["dtypes"] for row in rows)
    assert all(row["verified_on_gpu"] for row in rows if row["auto"])
    # the input gradient runs the forward's kernels
    strip = [{k: v for k, v in row.items() if k != "pass"} for row in rows]
    assert [s for s, r in zip(strip, rows) if r["pass"] == "fwd"] == [
        s for s, r in zip(strip, rows) if r["pass"] == "bwd_input"]


def test_the_catalogue_takes_which_algos_ran_on_a_gpu_from_the_table(kernels, monkeypatch):
    """Whether an algo has run on a GPU is the table's verified_on_gpu alone: the catalogue lets
    "auto" pick only verified algos and marks the others in their description."""
    monkeypatch.setattr(cuda, "algo_table", lambda: kernels.table)
    entries = {(impl.passes[0], impl.name): impl for impl in cuda_backend.entries()[1:]}
    assert len(entries) == len(kernels.table)
    for row in kernels.table:
        impl = entries[(row["pass"], f"cuda:{row['algo']}")]
        verified = row["verified_on_gpu"]
        assert impl.description.endswith(cuda_backend.NOT_RUN_ON_A_GPU) != verified, (row, impl.description)
        assert impl.auto_devices == (("cuda",) if verified and row["auto"] else ()), row


@pytest.mark.parametrize("pass_", ["fwd", "bwd_input", "bwd_weight"])
def test_every_algo_of_the_table_runs_for_its_dtypes(kernels, pass_):
    """Each (algo, dtype) the table lists reaches its launcher (a small problem against float64);
    a dtype it does not list is refused by name."""
    case = (1, 2, 9, 11, 5, 7, "same")
    for dtype in DTYPES:
        x, weight, bias, grad_out, (ph, pw), ref, yard = _problem(case, dtype)
        sizes = (*x.shape, *grad_out.shape[2:])
        for row in (r for r in kernels.table if r["pass"] == pass_):
            algo = row["algo"]
            if str(dtype)[6:] not in row["dtypes"]:
                with pytest.raises(RuntimeError, match=f'algo: "{algo}" needs'):
                    kernels.choice(pass_, dtype, sizes, 5, 7, ph, pw, algo)
                continue
            assert kernels.choice(pass_, dtype, sizes, 5, 7, ph, pw, algo) == algo
            if pass_ == "fwd":
                got = (kernels.fwd(x, weight, bias, ph, pw, algo),)
            elif pass_ == "bwd_input":
                got = (kernels.bwd_input(grad_out, weight, ph, pw, algo),)
            else:
                got = kernels.bwd_weight(grad_out, x, 5, 7, ph, pw, algo)
            first = {"fwd": 0, "bwd_input": 1, "bwd_weight": 2}[pass_]
            for k, out in enumerate(got):
                assert_close_to_reference(out, ref[first + k], dtype, yard[first + k], f"{pass_} {algo}")


def test_unknown_algo_names_list_the_table(kernels):
    for pass_ in ("fwd", "bwd_input", "bwd_weight"):
        names = ['"auto"'] + [f'"{r["algo"]}"' for r in kernels.table if r["pass"] == pass_]
        with pytest.raises(RuntimeError) as error:
            kernels.choice(pass_, torch.float32, (1, 1, 8, 8, 8, 8), 3, 3, 1, 1, "fast")
        assert str(error.value) == f'algo: expected one of {", ".join(names)}, got "fast"'


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("stage", STAGES, ids=lambda s: f"{s[0]}x{s[1]}x{s[1]}-k{s[2]}")
def test_auto_chooses_as_before_for_the_replknet_stages(kernels, stage, dtype):
    c, side, k = stage
    sizes = (64, c, side, side, side, side)
    for pass_ in ("fwd", "bwd_input"):
        assert kernels.choice(pass_, dtype, sizes, k, k, k // 2, k // 2) == AUTO_BEFORE[(dtype, side)], pass_
    assert kernels.choice("bwd_weight", dtype, sizes, k, k, k // 2, k // 2) == "direct"


def test_auto_follows_the_table(kernels):
    """"auto" is the first algo the table lets it pick that takes the dtype, the device and the
    shape; below compute capability 8.0 that is a CUDA-core one."""
    sizes = (2, 8, 40, 40, 40, 40)
    for pass_ in ("fwd", "bwd_input", "bwd_weight"):
        for dtype in DTYPES:
            allowed = [r for r in kernels.table if r["pass"] == pass_ and r["auto"]
                       and str(dtype)[6:] in r["dtypes"] and 40 > r["auto_min_side"]]
            assert kernels.choice(pass_, dtype, sizes, 7, 7, 3, 3) == allowed[0]["algo"]
    kernels.set_compute_capability(7, 5)
    try:
        for pass_ in ("fwd", "bwd_input", "bwd_weight"):
            chosen = kernels.choice(pass_, torch.float16, sizes, 7, 7, 3, 3)
            assert next(r for r in kernels.table if r["pass"] == pass_ and r["algo"] == chosen)["min_cc"] <= 75
        with pytest.raises(RuntimeError, match='algo: "mma_rows" needs float16 or bfloat16 on compute capability 8.0'):
            kernels.choice("fwd", torch.float16, sizes, 7, 7, 3, 3, "mma_rows")
    finally:
        kernels.set_compute_capability(9, 0)
