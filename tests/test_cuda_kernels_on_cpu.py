"""The CUDA-core kernels of csrc/ (direct forward and input gradient: algos direct, direct_generic
and direct_rows; the weight gradient) run on the CPU through tests/host_emulation, against the float64 reference. The
same source, tiling and launchers as the extension; every CUDA thread is an OS thread and every
__syncthreads a barrier. Outputs, partial sums and shared memory start as NaN. A ThreadSanitizer
build checks the kernels' shared memory for races, like compute-sanitizer's racecheck on a GPU."""
import pytest
import torch

from conv_testing import KERNEL_PATH_CASES, assert_close_to_reference, conv64, grads64, torch_same_dtype
import cuda_on_cpu
from replk_ops._checks import padding_pair

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
CASES = KERNEL_PATH_CASES + [
    (1, 2, 12, 26, 5, 63, "same"),        # the widest kernel: eight 8-tap chunks
    (2, 2, 8, 72, 5, 9, "same"),          # two column tiles of the weight gradient
]
# (Shapes chosen where PyTorch's own fp16 conv on CPU, the half-precision yardstick, finishes: it
# does not, within minutes, for some wide kernels on wider maps, e.g. 1x2x9x40 with a 3x17 kernel.)

pytestmark = pytest.mark.skipif(cuda_on_cpu.cuda_include_dirs() is None,
                                reason="needs the CUDA headers (nvcc) to build the kernels for the CPU")


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    return cuda_on_cpu.build(str(tmp_path_factory.mktemp("emulated_kernels")))


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


def test_emulation_orders_barriers_and_poisons_shared_memory(kernels):
    out = kernels.self_check(blocks=3, threads=96)
    assert torch.equal(out[..., 0], torch.tensor([1.0, 2.0, 3.0])[:, None].expand(3, 96))
    assert out[..., 1].isnan().all()


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "moat"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-p{c[6]}")
def test_direct_kernels_match_float64(kernels, case, dtype, layout):
    x, weight, bias, grad_out, (ph, pw), (ref_y, ref_dx, ref_dw, ref_db), (ty, tdx, tdw, tdb) = _problem(case, dtype)
    xs, gs = moated(x, layout), moated(grad_out, layout)
    out_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    kh, kw = weight.shape[2], weight.shape[3]
    for algo in cuda_on_cpu.FORWARD_ALGOS:
        y = kernels.fwd(xs, weight, bias, ph, pw, algo, out_format)
        assert_close_to_reference(y, ref_y, dtype, ty, f"output ({algo})")
        dx = kernels.bwd_input(gs, weight, ph, pw, algo, out_format)
        assert_close_to_reference(dx, ref_dx, dtype, tdx, f"grad x ({algo})")
    dw, db = kernels.bwd_weight(gs, xs, kh, kw, ph, pw)
    assert_close_to_reference(dw, ref_dw, dtype, tdw, "grad weight")
    assert_close_to_reference(db, ref_db, dtype, tdb, "grad bias")


def test_weight_gradient_is_bitwise_deterministic(kernels):
    x, weight, _, grad_out, (ph, pw), _, _ = _problem((3, 2, 20, 24, 7, 5, "same"), torch.float32)
    first = kernels.bwd_weight(grad_out, x, 7, 5, ph, pw)
    second = kernels.bwd_weight(grad_out, x, 7, 5, ph, pw)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_no_shared_memory_races(tmp_path):
    done = cuda_on_cpu.race_check(str(tmp_path))
    assert done.returncode == 0, f"ThreadSanitizer (exit {done.returncode}):\n{done.stderr[-6000:]}"


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
    for algo in cuda_on_cpu.FORWARD_ALGOS:
        assert_close_to_reference(kernels.fwd(xs, weight, bias, ph, pw, algo), ref_y, dtype, ty, f"output ({algo})")
        assert_close_to_reference(kernels.bwd_input(gs, weight, ph, pw, algo), ref_dx, dtype, tdx, f"grad x ({algo})")
    dw, db = kernels.bwd_weight(gs, xs, 5, 7, ph, pw)
    assert_close_to_reference(dw, ref_dw, dtype, tdw, "grad weight")
    assert_close_to_reference(db, ref_db, dtype, tdb, "grad bias")
