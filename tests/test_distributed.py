"""Data-parallel training on CPU with two gloo processes equals one process on the combined batch:
DDP, and FSDP2 (``fully_shard``) on a small RepLKNet, eager and under ``torch.compile``.

The processes meet through a file store (no port to collide with), and are joined with a generous
deadline, so a busy machine only makes the tests slower."""
import datetime
import os
import tempfile
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

import replk_ops
from conv_testing import HANG_GUARD_S, tiny_replknet

try:
    # torch >= 2.6. The experimental fully_shard of torch 2.4 and 2.5 initializes CUDA even on a CPU
    # device mesh (it fails under gloo on a machine without a GPU), so there the test skips.
    from torch.distributed.fsdp import fully_shard
except ImportError:
    fully_shard = None

WORLD = 2
JOIN_TIMEOUT_S = HANG_GUARD_S  # a hang guard: beside other jobs the compiled run took over 10 minutes
needs_distributed = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


class _SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.pw = nn.Conv2d(3, 8, 1)
        self.dw = replk_ops.LargeKernelDWConv2d(8, 13)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.dw(self.pw(x)))
        return self.head(x.mean(dim=(2, 3)))


def _data(size=20, classes=4):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, size, size, generator=generator), torch.randn(8, classes, generator=generator)


def _train(model, inputs, targets, steps=3, parameters=None):
    optimizer = torch.optim.SGD(model.parameters() if parameters is None else parameters, lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(model(inputs), targets).backward()
        optimizer.step()


def _shard(tensor, rank):
    share = tensor.shape[0] // WORLD
    return tensor[rank * share:(rank + 1) * share]


def _run_workers(worker, *args):
    """Runs ``worker(rank, init_file, out_file, *args)`` in WORLD processes; rank 0 saves to
    out_file, which is returned loaded."""
    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = os.path.join(tmp, "init"), os.path.join(tmp, "params.pt")
        context = mp.spawn(worker, args=(init_file, out_file, *args), nprocs=WORLD, join=False)
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not context.join(timeout=max(1.0, deadline - time.monotonic())):  # raises if a worker failed
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.terminate()
                pytest.fail(f"the {WORLD} training processes did not finish within {JOIN_TIMEOUT_S} s")
        return torch.load(out_file)


def _init(rank, init_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=JOIN_TIMEOUT_S))


def _ddp_worker(rank, init_file, out_file):
    _init(rank, init_file)
    try:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(_SmallNet())
        inputs, targets = _data()
        _train(model, _shard(inputs, rank), _shard(targets, rank))
        if rank == 0:
            torch.save(model.module.state_dict(), out_file)
    finally:
        dist.destroy_process_group()


@needs_distributed
def test_ddp_two_processes_match_one_process_on_the_combined_batch():
    distributed = _run_workers(_ddp_worker)
    torch.manual_seed(0)
    single = _SmallNet()
    _train(single, *_data())
    for name, value in single.state_dict().items():
        torch.testing.assert_close(distributed[name], value, rtol=1e-5, atol=1e-6, msg=name)


def _replknet():
    """The tiny RepLKNet with its large kernels on replk_ops' own CPU route (so the custom ops and
    their autograd run, not PyTorch's conv), in eval mode: BatchNorm then uses its running
    statistics, so two half batches give the same gradients as the whole batch (batch statistics
    would differ per process, and SyncBatchNorm has no CPU kernel)."""
    torch.manual_seed(0)
    model = tiny_replknet(num_classes=4).eval()
    for module in model.modules():
        if isinstance(module, replk_ops.LargeKernelDWConv2d):
            module.backend = "direct"
    return model


def _fsdp_worker(rank, init_file, out_file, compiled):
    _init(rank, init_file)
    try:
        from torch.distributed.device_mesh import init_device_mesh

        # a CPU mesh: by default fully_shard would move the model to a GPU, which gloo cannot serve here
        mesh = init_device_mesh("cpu", (WORLD,))
        model = _replknet()
        for stage in model.stages:
            fully_shard(stage, mesh=mesh)
        fully_shard(model, mesh=mesh)
        run = torch.compile(model, backend="aot_eager") if compiled else model
        inputs, targets = _data(size=32)
        _train(run, _shard(inputs, rank), _shard(targets, rank), parameters=model.parameters())
        full = {name: param.full_tensor() for name, param in model.named_parameters()}  # every rank gathers
        if rank == 0:
            torch.save(full, out_file)
    finally:
        dist.destroy_process_group()


@needs_distributed
@pytest.mark.skipif(fully_shard is None, reason=f"torch {torch.__version__} has no public FSDP2 fully_shard "
                    "(torch >= 2.6), and its experimental one needs CUDA")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_fsdp2_two_processes_match_one_process_on_the_combined_batch(compiled):
    distributed = _run_workers(_fsdp_worker, compiled)
    single = _replknet()
    _train(single, *_data(size=32))
    params, initial = dict(single.named_parameters()), dict(_replknet().named_parameters())
    assert distributed.keys() == params.keys()
    trained = 0
    for name, value in params.items():
        torch.testing.assert_close(distributed[name], value.detach(), rtol=1e-4, atol=1e-5, msg=name)
        trained += not torch.equal(value, initial[name])
    assert trained > len(params) // 2, "too few parameters changed for the comparison to mean anything"
