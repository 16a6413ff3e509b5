"""Reliability on CPU (GPU-only parts live in test_gpu_reliability.py; data-parallel training in
test_distributed.py): bitwise determinism on request, torch.compile without recompiles across
batch sizes, and no memory growth over many training steps."""
import gc
import os

import pytest
import torch

import replk_ops
from conv_testing import tiny_replknet

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _fwd_bwd(backend, x, w, b, dy):
    x, w, b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    y = replk_ops.dwconv2d(x, w, b, backend=backend)
    y.backward(dy)
    return y, x.grad, w.grad, b.grad


@pytest.mark.parametrize("backend", replk_ops.available_backends(DEVICE))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_deterministic_mode_is_bitwise_reproducible(backend, dtype):
    x = torch.randn(3, 6, 37, 41, device=DEVICE).to(dtype)
    w = torch.randn(6, 1, 13, 11, device=DEVICE).to(dtype)
    b = torch.randn(6, device=DEVICE).to(dtype)
    dy = torch.randn(3, 6, 37, 41, device=DEVICE).to(dtype)
    torch.use_deterministic_algorithms(True)
    try:
        if backend == "fft" and DEVICE == "cuda":  # the planner refuses it there, by design
            with pytest.raises(RuntimeError, match="'fft' cannot run this call: cuFFT is not documented as "
                                                   "deterministic"):
                _fwd_bwd(backend, x, w, b, dy)
            return
        first = _fwd_bwd(backend, x, w, b, dy)
        second = _fwd_bwd(backend, x, w, b, dy)
    finally:
        torch.use_deterministic_algorithms(False)
    for name, a, c in zip(("output", "grad x", "grad weight", "grad bias"), first, second):
        assert torch.equal(a, c), f"{backend}: {name} differs between two runs in deterministic mode"


def test_compiled_replknet_matches_eager_without_recompiling_for_new_batch_sizes():
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = tiny_replknet().train()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True, dynamic=True)
    compiles_after_first = None
    for batch in (2, 3, 5):
        x = torch.randn(batch, 3, 32, 32)
        eager_out = model(x)
        eager_out.sum().backward()
        eager_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        out = compiled(x)
        out.sum().backward()
        torch.testing.assert_close(out, eager_out, rtol=1e-4, atol=1e-5)
        for got, want in zip((p.grad for p in model.parameters()), eager_grads):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        model.zero_grad()
        compiles_after_first = compiles_after_first or counter.frame_count
    assert compiles_after_first >= 1
    assert counter.frame_count == compiles_after_first, "a new batch size triggered a recompile"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
def test_no_memory_growth_over_1000_training_steps():
    conv = replk_ops.LargeKernelDWConv2d(4, 7)
    x = torch.randn(2, 4, 16, 16, requires_grad=True)

    def step():
        conv(x).square().sum().backward()
        conv.zero_grad(set_to_none=True)
        x.grad = None

    for _ in range(100):  # warm-up: allocator pools, lazy initialisation
        step()
    tensors, rss = _live_tensors(), _rss_bytes()
    for _ in range(1000):
        step()
    assert _live_tensors() <= tensors, "live tensors grew over 1000 steps"
    grown = _rss_bytes() - rss
    assert grown < 16 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 1000 steps"
