"""Reliability on CPU (GPU-only parts live in test_gpu_reliability.py): bitwise determinism on
request, DDP equals single-process training, torch.compile without recompiles across batch
sizes, and no memory growth over many training steps."""
import gc
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

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
        first = _fwd_bwd(backend, x, w, b, dy)
        second = _fwd_bwd(backend, x, w, b, dy)
    finally:
        torch.use_deterministic_algorithms(False)
    for name, a, c in zip(("output", "grad x", "grad weight", "grad bias"), first, second):
        assert torch.equal(a, c), f"{backend}: {name} differs between two runs in deterministic mode"


class _SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.pw = nn.Conv2d(3, 8, 1)
        self.dw = replk_ops.LargeKernelDWConv2d(8, 13)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.dw(self.pw(x)))
        return self.head(x.mean(dim=(2, 3)))


def _data():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 20, 20, generator=generator), torch.randn(8, 4, generator=generator)


def _train(model, inputs, targets, steps=3):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(model(inputs), targets).backward()
        optimizer.step()


def _ddp_worker(rank, world, init_file, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(_SmallNet())
        inputs, targets = _data()
        share = inputs.shape[0] // world
        _train(model, inputs[rank * share:(rank + 1) * share], targets[rank * share:(rank + 1) * share])
        if rank == 0:
            torch.save(model.module.state_dict(), out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_ddp_two_processes_match_one_process_on_the_combined_batch():
    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = os.path.join(tmp, "init"), os.path.join(tmp, "params.pt")
        mp.spawn(_ddp_worker, args=(2, init_file, out_file), nprocs=2, join=True)
        distributed = torch.load(out_file)
    torch.manual_seed(0)
    single = _SmallNet()
    _train(single, *_data())
    for name, value in single.state_dict().items():
        torch.testing.assert_close(distributed[name], value, rtol=1e-5, atol=1e-6, msg=name)


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
