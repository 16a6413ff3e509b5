"""The Triton kernels against the float64 reference. Without a GPU they run on CPU tensors
through the Triton interpreter (conftest sets TRITON_INTERPRET=1); with one, on the GPU."""
import pytest
import torch

pytest.importorskip("triton")

import replk_ops  # noqa: E402
from replk_ops.backends.triton.kernels import bwd_weight as weight_grad, common, dense, fwd, launch, tuning  # noqa: E402
from replk_ops._checks import padding_pair  # noqa: E402
from conv_testing import (  # noqa: E402
    KERNEL_PATH_CASES, assert_close_to_reference, conv64, grads64, make_input, torch_same_dtype,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

CASES = KERNEL_PATH_CASES + [
    # kernels covering the map: the dense per-channel GEMM (several image blocks and pixel blocks)
    (20, 2, 7, 7, 13, 13, "same"),
    (3, 2, 5, 6, 11, 13, "same"),
    (1, 2, 5, 4, 10, 8, (4, 3)),          # even kernel, asymmetric padding
]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def nan_workspace(shape, **kw):
    """Workspaces that start as NaN, so a partial the kernel forgets to write poisons the result."""
    return torch.full(shape, float("nan"), **kw)


def _reference_set(x, weight, bias, pad, grad_out):
    ref_y = conv64(x, weight, bias, pad)
    ref = (ref_y,) + grads64(x, weight, bias, pad, grad_out)
    if x.dtype in (torch.float16, torch.bfloat16):
        yard = torch_same_dtype(x, weight, bias, pad, grad_out)
    else:
        yard = (None,) * 4
    return ref, yard


def _case_tensors(case, dtype, layout="nchw"):
    """x, weight, bias, (ph, pw) and grad_out for a test case, in ``dtype`` on the test device."""
    n, c, h, w, kh, kw, padding = case
    pad = padding_pair(padding, (kh, kw))
    x = make_input(n, c, h, w, dtype, device=DEVICE, layout=layout)
    weight = (torch.randn(c, 1, kh, kw, dtype=torch.float64) / (kh * kw) ** 0.5).to(DEVICE, dtype)
    bias = torch.randn(c, dtype=torch.float64).to(DEVICE, dtype)
    ho, wo = h + 2 * pad[0] - kh + 1, w + 2 * pad[1] - kw + 1
    grad_out = torch.randn(n, c, ho, wo, dtype=torch.float64).to(DEVICE, dtype)
    return x, weight, bias, pad, grad_out


def _forward_and_input_grad(x, weight, bias, pad, grad_out, variant=None):
    """The launcher's forward and input gradient (``variant``, or the tuned or heuristic one) into
    NaN-filled outputs: every element must be written."""
    y = launch.fwd(x, weight, bias, pad[0], pad[1], out=torch.full_like(grad_out, float("nan")), variant=variant)
    dx = launch.bwd_input(grad_out, weight, pad[0], pad[1], out=torch.full_like(x, float("nan")), variant=variant)
    return y, dx


def _weight_grad(grad_out, x, weight, pad, variant=None):
    """The launcher's weight and bias gradients (``variant``, or the tuned or heuristic one) from
    NaN-filled partials."""
    return launch.bwd_weight(grad_out, x, weight.shape[2], weight.shape[3], pad[0], pad[1], variant=variant,
                             workspace=nan_workspace)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-p{c[6]}")
def test_triton_matches_float64(case, dtype):
    x, weight, bias, pad, grad_out = _case_tensors(case, dtype)
    (ref_y, ref_dx, ref_dw, ref_db), (ty, tdx, tdw, tdb) = _reference_set(x, weight, bias, pad, grad_out)
    y, dx = _forward_and_input_grad(x, weight, bias, pad, grad_out)
    dw, db = _weight_grad(grad_out, x, weight, pad)
    assert_close_to_reference(y, ref_y, dtype, ty, "output")
    assert_close_to_reference(dx, ref_dx, dtype, tdx, "grad x")
    assert_close_to_reference(dw, ref_dw, dtype, tdw, "grad weight")
    assert_close_to_reference(db, ref_db, dtype, tdb, "grad bias")


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=lambda d: str(d)[6:])
def test_triton_layouts_through_autograd(layout, dtype):
    n, c, h, w, k = 2, 3, 12, 35, 7
    x = make_input(n, c, h, w, dtype, device=DEVICE, layout=layout).requires_grad_()
    weight = (torch.randn(c, 1, k, k, dtype=torch.float64) / k).to(DEVICE, dtype).requires_grad_()
    bias = torch.randn(c, dtype=torch.float64).to(DEVICE, dtype).requires_grad_()
    y = replk_ops.dwconv2d(x, weight, bias, backend="triton")
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    pad = (k // 2, k // 2)
    (ref_y, ref_dx, ref_dw, ref_db), (ty, tdx, tdw, tdb) = _reference_set(x, weight, bias, pad, grad_out)
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert x.grad.is_contiguous(memory_format=torch.channels_last)
    assert_close_to_reference(y, ref_y, dtype, ty, "output")
    assert_close_to_reference(x.grad, ref_dx, dtype, tdx, "grad x")
    assert_close_to_reference(weight.grad, ref_dw, dtype, tdw, "grad weight")
    assert_close_to_reference(bias.grad, ref_db, dtype, tdb, "grad bias")
    dw, _ = _weight_grad(grad_out, x.detach(), weight, pad)  # every partial written on this layout too
    assert_close_to_reference(dw, ref_dw, dtype, tdw, "grad weight (NaN workspace)")


def _run_variant(x, weight, bias, pad, meta, warps, r):
    n, c, h, w = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    ho, wo = h + 2 * pad[0] - kh + 1, w + 2 * pad[1] - kw + 1
    out = torch.full((n, c, ho, wo), float("nan"), dtype=x.dtype, device=x.device)
    upcast, ieee = common.flags(x)
    fwd.dwconv_fwd_kernel[fwd.fwd_grid(n, c, ho, wo, r)(meta)](
        x, weight, bias if bias is not None else weight, out, n, h, w, ho, wo, kh, kw, pad[0], pad[1],
        *x.stride(), *out.stride(), 0, HAS_BIAS=bias is not None, R=r, UPCAST=upcast, IEEE=ieee, num_warps=warps,
        **meta)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("kw,w", [(7, 70), (31, 70), (31, 72), (63, 72)])
def test_every_autotune_config_is_correct(kw, w, dtype):
    """The GPU autotunes the forward over these variants (group rows and, for batches of 16 and
    more, batch rows with the widest vectors the strides allow), with the launcher's R and
    precision for the dtype; each one must compute the same conv. W = 72 lets bf16 tiles load
    8-element vectors (fp32: 4), W = 70 pairs."""
    n, c, h, kh = 3, 2, 12, 5
    x = make_input(n, c, h, w, dtype, device=DEVICE)
    weight = (torch.randn(c, 1, kh, kw, dtype=torch.float64) / (kh * kw) ** 0.5).to(DEVICE, dtype)
    pad = (kh // 2, kw // 2)
    want = conv64(x, weight, None, pad)
    yard = None if dtype == torch.float32 else torch.nn.functional.conv2d(x, weight, padding=pad, groups=c)
    width = common.vector_width(x)
    assert width == (2 if w == 70 else 16 // x.element_size())
    # the batch here is small, so ask for the large-batch variants too: the kernel is right for any batch
    assert tuning.tune_class(x) == 2 * width
    variants = tuning.forward_candidates(kw, dtype, tuning.BATCH_ROWS_MIN)
    fp32 = dtype == torch.float32
    for rows in (tuning.GROUP_ROWS, tuning.BATCH_ROWS):  # fp32: BM <= 64
        assert len([v for v in variants if v.rows == rows]) == \
            len([v for v in tuning.FORWARD_VARIANTS if v.rows == rows and (v.bm <= 64 or not fp32)])
    configs = [(v.meta(kw, width if v.rows == tuning.BATCH_ROWS else 1), v.warps) for v in variants]
    assert all(meta["ALIGN"] == 1 for meta, _ in configs if not meta["BATCH_ROWS"])
    assert all(meta["BN"] + kw - 1 + meta["ALIGN"] - 1 <= meta["BK"] for meta, _ in configs if meta["BATCH_ROWS"])
    if kw == 31:  # a 16-wide strip leaves room for the full vector width
        assert max(meta["ALIGN"] for meta, _ in configs if meta["BATCH_ROWS"]) == width
    r = fwd.phases(h, dtype)
    assert r == (1 if fp32 else 4)
    for meta, warps in configs:
        out = _run_variant(x, weight, None, pad, meta, warps, r)
        assert_close_to_reference(out, want, dtype, yard, what=f"config {meta}, {warps} warps")


def test_small_batches_tune_group_rows_only():
    for batch in (1, 15):
        assert tuning.forward_candidates(7, torch.float32, batch)
        assert all(v.rows == tuning.GROUP_ROWS for v in tuning.forward_shortlist(7, torch.float32, batch, 64))
        assert not any(v.batch_rows for v in tuning.weight_grad_shortlist(batch))
    assert tuning.tune_class(torch.empty(16, 2, 8, 8)) % 2 == 1


def test_vector_width_follows_strides_and_address():
    x = torch.empty(2, 3, 8, 16, dtype=torch.bfloat16)
    assert common.vector_width(x) == 8
    assert common.vector_width(x[..., 1:15]) == 1           # the address 2 bytes past an aligned one
    assert common.vector_width(x[..., 2:16]) == 2           # W = 14, the address 4 bytes past
    assert common.vector_width(x[..., 4:16]) == 4           # W = 12, the address 8 bytes past
    assert common.vector_width(x.to(memory_format=torch.channels_last)) == 1
    assert common.vector_width(torch.empty(2, 3, 8, 16)) == 4  # fp32: 16 bytes
    assert common.vector_width(torch.empty(2, 3, 7, 7)) == 1


# the shapes the row kernels serve (the others go to the dense per-channel GEMM)
ROW_KERNEL_CASES = [c for c in KERNEL_PATH_CASES if not dense.covers_map(c[2], c[3], c[4], c[5])]


# The batch-row variants the untuned launcher runs here: the forward's with a 16-image tile (the
# interpreter's time grows with the tile), the weight gradient's as tuned; both at the widest
# vectors each call's tensors allow.
BATCH_ROW_FORWARD = tuning.ForwardVariant(tuning.BATCH_ROWS, bm=16, bn=16, warps=4)
(BATCH_ROW_WEIGHT_GRAD,) = [v for v in tuning.WEIGHT_GRAD_VARIANTS if v.batch_rows]


LAYOUT_CASE = (3, 2, 12, 24, 9, 9, "same")
# Each row-kernel shape in fp32 and in one half dtype, fp16 and bf16 taking turns: the shape decides
# the tiling, masks and strips; the element size decides the vector width (fp32 4 elements, fp16 and
# bf16 both 8), so fp16 and bf16 take the same path but for the conversion, which every other shape
# checks. (All three on every shape cost a third more, mostly the interpreter on the 63x3 kernel.)
BATCH_ROW_PARAMS = ([(d, c, "nchw") for i, c in enumerate(ROW_KERNEL_CASES) for d in (DTYPES[0], DTYPES[1 + i % 2])]
                    + [(d, LAYOUT_CASE, layout) for d in DTYPES[:2] for layout in ("channels_last", "strided")])


def _batch_row_id(v):
    return str(v)[6:] if isinstance(v, torch.dtype) else "x".join(map(str, v[:6])) + f"-p{v[6]}" \
        if isinstance(v, tuple) else v


def test_batch_row_cases_cover_every_shape_and_both_half_dtypes():
    shapes = {c for _, c, layout in BATCH_ROW_PARAMS if layout == "nchw"}
    assert shapes == set(ROW_KERNEL_CASES)
    assert {d for d, _, _ in BATCH_ROW_PARAMS} == set(DTYPES)


@pytest.mark.parametrize("dtype,case,layout", BATCH_ROW_PARAMS, ids=_batch_row_id)
def test_batch_row_forward_matches_float64(case, dtype, layout):
    """The batch-row variant (tuned on the GPU for batches of 16 and more) on every kernel-path
    shape and on strided layouts, forward and input gradient, at the widest vectors each input
    allows."""
    x, weight, bias, pad, grad_out = _case_tensors(case, dtype, layout)
    (ref_y, ref_dx, _, _), (ty, tdx, _, _) = _reference_set(x, weight, bias, pad, grad_out)
    y, dx = _forward_and_input_grad(x, weight, bias, pad, grad_out, BATCH_ROW_FORWARD)
    assert_close_to_reference(y, ref_y, dtype, ty, "output")
    assert_close_to_reference(dx, ref_dx, dtype, tdx, "grad x")


@pytest.mark.parametrize("dtype,case,layout", BATCH_ROW_PARAMS, ids=_batch_row_id)
def test_batch_row_weight_gradient_matches_float64(case, dtype, layout):
    """The batch-row weight gradient (tuned on the GPU for batches of 16 and more), transposed
    product, on every kernel-path shape and on strided layouts, at the widest vectors each
    input allows."""
    x, weight, bias, pad, grad_out = _case_tensors(case, dtype, layout)
    (_, _, ref_dw, ref_db), (_, _, tdw, tdb) = _reference_set(x, weight, bias, pad, grad_out)
    dw, db = _weight_grad(grad_out, x, weight, pad, BATCH_ROW_WEIGHT_GRAD)
    assert_close_to_reference(dw, ref_dw, dtype, tdw, "grad weight")
    assert_close_to_reference(db, ref_db, dtype, tdb, "grad bias")


def test_fuzz_batch_row_variants():
    """Random cases (tests/fuzz_cases.py) through the batch-row variants, whatever the map and
    kernel sizes (the dense GEMM never steps in): forward and all three gradients against
    float64, as test_fuzz.py does for the tuned or heuristic ones."""
    from hypothesis import given

    from fuzz_cases import conv_cases
    from test_fuzz import _check

    def compute(x, weight, bias, case, grad_out):
        y, dx = _forward_and_input_grad(x, weight, bias, case["pad"], grad_out, BATCH_ROW_FORWARD)
        dw, db = _weight_grad(grad_out, x, weight, case["pad"], BATCH_ROW_WEIGHT_GRAD)
        return y, dx, dw, db if bias is not None else None

    @given(case=conv_cases())
    def run(case):
        _check(case, compute, "triton batch rows")

    run()


@pytest.mark.parametrize("batch_rows,w,splits", [(False, 37, 1), (True, 37, 3), (True, 40, 2)],
                         ids=["group-rows", "batch-rows-3-splits", "batch-rows-vectors-2-splits"])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=lambda d: str(d)[6:])
def test_every_weight_gradient_variant_is_correct(dtype, transposed, batch_rows, w, splits):
    """The GPU tunes the weight gradient over the product's orientation and (batches of 16 and
    more) the batch-row tiles; all give the same sums, with R = 4 kernel rows per program (bf16,
    kh = 6: the second group half past the kernel) and R = 1 (fp32), split over loop rows. W = 40
    lets the batch-row tiles load vectors."""
    import triton

    n, c, h, kh, kw = 2, 3, 10, 6, 9
    ph, pw = 2, 4
    x = make_input(n, c, h, w, dtype, device=DEVICE)
    weight = torch.randn(c, 1, kh, kw, dtype=torch.float64).to(DEVICE, dtype)
    ho, wo = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    grad_out = torch.randn(n, c, ho, wo, dtype=torch.float64).to(DEVICE, dtype)
    (_, _, ref_dw, _), (_, _, yard_dw, _) = _reference_set(x, weight, None, (ph, pw), grad_out)
    r = weight_grad.weight_phases(kh, dtype)
    assert r == (1 if dtype == torch.float32 else 4)
    bn, br = 32, 16
    bk = triton.next_power_of_2(bn + kw - 1)
    width = common.vector_width(x)
    assert tuning.tune_class(x, grad_out) == 2 * width and width == (1 if w == 37 else 16 // x.element_size())
    # the batch here is small: ask for the large-batch variants too (the kernel is right for any batch)
    (variant,) = [v.meta(bn, bk, kw, width if v.batch_rows else 1) for v in tuning.WEIGHT_GRAD_VARIANTS
                  if v.batch_rows == batch_rows and (batch_rows or (v.transposed == transposed and v.warps == 4))]
    # batch rows tune the transposed product only; the other orientation must still be right
    variant = dict(variant, TRANSPOSED=transposed)
    assert variant["DY_ALIGN"] == (width if batch_rows else 1)
    strips, rows = triton.cdiv(wo, bn), n * (ho + r - 1)
    rows_per_split = triton.cdiv(rows, splits)
    partials = torch.full((strips * splits, c, kh, kw), float("nan"), dtype=torch.float32, device=DEVICE)
    upcast, ieee = common.flags(x)
    weight_grad.dwconv_bwd_weight_kernel[(strips * splits, triton.cdiv(kh, r), c)](
        grad_out, x, partials, n, c, h, w, ho, wo, kh, kw, ph, pw, rows_per_split, splits, *grad_out.stride(),
        *x.stride(), 0, R=r, BR=br, BN=bn, BK=bk, KWP=weight_grad.weight_columns_block(kw), UPCAST=upcast, IEEE=ieee,
        **variant)
    assert_close_to_reference(partials.sum(0).unsqueeze(1).to(dtype), ref_dw, dtype, yard_dw,
                              what=f"grad weight ({variant})")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("batch", [1, 4, 16, 64, 256])
def test_short_lists_stay_within_the_tuning_bound(batch, dtype):
    """The tuner compiles and times at most MAX_TUNED variants a call, each one the call can run,
    and never a tile the call cannot fill while a smaller one can."""
    for kw in (3, 13, 31, 63):
        for ho in (7, 14, 56):
            groups = batch * ho // fwd.phases(ho, dtype)
            listed = tuning.forward_shortlist(kw, dtype, batch, groups)
            assert 1 <= len(listed) <= tuning.MAX_TUNED
            assert set(listed) <= set(tuning.forward_candidates(kw, dtype, batch))
            group_tiles = [v.bm for v in listed if v.rows == tuning.GROUP_ROWS]
            assert group_tiles and max(group_tiles) <= max(16, triton_next_pow2(groups)), listed
    assert 1 <= len(tuning.weight_grad_shortlist(batch)) <= tuning.MAX_TUNED


def triton_next_pow2(n):
    return 1 << (n - 1).bit_length()


def test_no_triton_tuning_under_determinism_or_graph_capture(monkeypatch):
    """Tuning picks variants by timing, which can differ between processes and cannot run inside
    a CUDA-graph capture: neither happens there."""
    monkeypatch.setenv(tuning.AUTOTUNE_ENV, "1")
    assert not tuning.fixed_tiles(interpreter=False, capturing=False)
    assert tuning.fixed_tiles(interpreter=True, capturing=False)
    assert tuning.fixed_tiles(interpreter=False, capturing=True)
    torch.use_deterministic_algorithms(True)
    try:
        assert tuning.fixed_tiles(interpreter=False, capturing=False)
    finally:
        torch.use_deterministic_algorithms(False)
    monkeypatch.setenv(tuning.AUTOTUNE_ENV, "0")
    assert tuning.fixed_tiles(interpreter=False, capturing=False)


@pytest.mark.parametrize("value", ["yes", "2", "off"])
def test_bad_triton_autotune_setting_raises(monkeypatch, value):
    monkeypatch.setenv(tuning.AUTOTUNE_ENV, value)
    x = make_input(1, 2, 9, 9, torch.float32, device=DEVICE)
    with pytest.raises(ValueError, match="REPLK_OPS_TRITON_AUTOTUNE: expected 0 or 1"):
        launch.fwd(x, torch.randn(2, 1, 5, 5, device=DEVICE), None, 2, 2)


def test_dense_path_serves_kernels_that_cover_the_map():
    """The routing itself: covering kernels take the dense GEMM (the forward on x, the input
    gradient on grad_out), others the row-Toeplitz kernel."""
    x = make_input(2, 3, 7, 7, torch.float32, device=DEVICE)
    assert fwd.planned_variant(x, 13, 13, 7, 7) == tuning.ForwardVariant(tuning.DENSE, *dense.tiles(2, 49))
    assert fwd.planned_variant(x, 11, 11, 7, 7).rows == tuning.GROUP_ROWS  # 11 < 2 * 7 - 1


def test_dense_variant_is_correct_on_any_shape():
    """The dense GEMM masks every out-of-range pair, so it is right where the planner would not
    pick it too (here a kernel smaller than the map)."""
    x, weight, bias, pad, grad_out = _case_tensors((2, 3, 9, 11, 5, 7, (1, 4)), torch.float32)
    (ref_y, ref_dx, _, _), (ty, tdx, _, _) = _reference_set(x, weight, bias, pad, grad_out)
    y, dx = _forward_and_input_grad(x, weight, bias, pad, grad_out, tuning.ForwardVariant(tuning.DENSE, 16, 32))
    assert_close_to_reference(y, ref_y, torch.float32, ty, "output")
    assert_close_to_reference(dx, ref_dx, torch.float32, tdx, "grad x")


def test_triton_weight_gradient_is_bitwise_deterministic():
    x = make_input(3, 2, 20, 40, torch.float32, device=DEVICE)
    grad_out = torch.randn(3, 2, 20, 40, device=DEVICE)
    torch.use_deterministic_algorithms(True)
    try:
        first = launch.bwd_weight(grad_out, x, 9, 9, 4, 4, workspace=nan_workspace)
        second = launch.bwd_weight(grad_out, x, 9, 9, 4, 4, workspace=nan_workspace)
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_triton_empty_batch():
    x = torch.randn(0, 3, 9, 9, device=DEVICE)
    weight = torch.randn(3, 1, 5, 5, device=DEVICE)
    assert replk_ops.dwconv2d(x, weight, backend="triton").shape == (0, 3, 9, 9)
    dw, db = launch.bwd_weight(torch.randn(0, 3, 9, 9, device=DEVICE), x, 5, 5, 2, 2, workspace=nan_workspace)
    assert torch.equal(dw, torch.zeros_like(dw)) and torch.equal(db, torch.zeros_like(db))


def test_explain_names_triton_for_its_devices():
    x, w = torch.randn(1, 4, 8, 8, device=DEVICE), torch.randn(4, 1, 7, 7, device=DEVICE)
    report = replk_ops.explain(x, w)
    if DEVICE == "cuda":
        assert report.backend in ("triton", "cuda")
    else:
        assert report.backend in ("torch", "direct")
        assert "does not pick it for cpu" in report.reasons["triton"]
    assert "supports kernels up to 63" in replk_ops.explain(x, torch.randn(4, 1, 65, 65, device=DEVICE),
                                                           backend="triton").reasons["triton"]
    with pytest.raises(RuntimeError, match="'triton' cannot run"):
        replk_ops.dwconv2d(x.double(), w.double(), backend="triton")
