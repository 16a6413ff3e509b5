"""GPU-only guarantees: CUDA-graph capture and replay, tensors past 2^31 elements, a second device,
and no hidden full-size workspaces. Skipped without a GPU; run by benchmarks/gpu_check.sh."""
import pytest
import torch
import torch.nn.functional as F

import replk_ops
from conv_testing import tiny_replknet

pytestmark = pytest.mark.gpu


def _gpu_backends():
    if not torch.cuda.is_available():
        return ["cuda", "triton"]  # collected, then skipped by the gpu marker
    return [b for b in ("cuda", "triton") if b in replk_ops.available_backends("cuda")]


def _step(x, w, b, backend):
    y = replk_ops.dwconv2d(x, w, b, backend=backend)
    return torch.autograd.grad(y.float().square().sum(), (x, w, b))


@pytest.mark.parametrize("backend", _gpu_backends())
def test_cuda_graph_capture_and_replay(backend):
    x = torch.randn(2, 16, 28, 28, device="cuda", requires_grad=True)
    w = torch.randn(16, 1, 13, 13, device="cuda", requires_grad=True)
    b = torch.randn(16, device="cuda", requires_grad=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the graph (compiles, sets attributes)
        for _ in range(2):
            _step(x, w, b, backend)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _step(x, w, b, backend)
    with torch.no_grad():
        x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    eager = _step(x, w, b, backend)
    for got, want in zip(captured, eager):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("backend", _gpu_backends())
def test_more_than_2_pow_31_elements(backend):
    """The last image starts past element 2^31: 32-bit offsets would wrap around into image 0."""
    n, c, h, w, k = 33, 1024, 256, 256, 3
    if torch.cuda.get_device_properties(0).total_memory < 24 * 2**30:
        pytest.skip("needs 24 GiB of GPU memory")
    x = torch.zeros(n, c, h, w, device="cuda", dtype=torch.float16)
    assert x.numel() > 2**31
    x[-1].normal_()
    weight = torch.randn(c, 1, k, k, device="cuda", dtype=torch.float16)
    y = replk_ops.dwconv2d(x, weight, backend=backend)
    want = F.conv2d(x[-1:].float(), weight.float(), padding=1, groups=c)
    torch.testing.assert_close(y[-1:].float(), want, rtol=2e-2, atol=2e-2)
    assert y[0].abs().max().item() == 0  # nothing of the last image leaked into the first
    del y
    dy = torch.zeros_like(x)
    dy[-1].normal_()
    gw, _ = torch.ops.replk_ops.dwconv2d_bwd_weight(dy, x, k, k, 1, 1, backend)
    xs = x[-1:].float().requires_grad_()
    ws = weight.float().requires_grad_()
    F.conv2d(xs, ws, padding=1, groups=c).backward(dy[-1:].float())
    torch.testing.assert_close(gw.float(), ws.grad, rtol=3e-2, atol=0.5)


@pytest.mark.parametrize("backend", _gpu_backends())
def test_second_device_is_respected(backend):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    x = torch.randn(2, 8, 20, 20, device="cuda:1")
    w = torch.randn(8, 1, 7, 7, device="cuda:1")
    y = replk_ops.dwconv2d(x, w, backend=backend)
    assert y.device == x.device
    torch.testing.assert_close(y, F.conv2d(x, w, padding=3, groups=8), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", _gpu_backends())
def test_peak_memory_of_a_training_step(backend):
    """The peak of a fwd+bwd stays within 1.1x of inputs + output + gradients: no hidden full-size
    workspaces."""
    x = torch.randn(16, 128, 56, 56, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(128, 1, 31, 31, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    dy = torch.randn(16, 128, 56, 56, device="cuda", dtype=torch.bfloat16)
    y = replk_ops.dwconv2d(x, w, backend=backend)  # warm-up
    y.backward(dy)
    x.grad = w.grad = None
    del y
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()  # x, w, dy, and whatever else this process holds
    y = replk_ops.dwconv2d(x, w, backend=backend)
    y.backward(dy)
    torch.cuda.synchronize()
    size = lambda *ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    peak = torch.cuda.max_memory_allocated() - before + size(x, w, dy)
    needed = size(x, w, dy, y, x.grad, w.grad)
    assert peak <= 1.1 * needed, f"peak {peak / 2**20:.1f} MiB, inputs + output + gradients {needed / 2**20:.1f} MiB"


def test_bad_cuda_inputs_raise_and_leave_the_device_usable():
    x = torch.randn(2, 4, 16, 16, device="cuda")
    w = torch.randn(4, 1, 5, 5, device="cuda")
    bad = [
        (lambda: replk_ops.dwconv2d(x, torch.randn(3, 1, 5, 5, device="cuda")), ValueError, "weight: expected shape"),
        (lambda: replk_ops.dwconv2d(x, w.cpu()), RuntimeError, "weight: expected a tensor on cuda"),
        (lambda: replk_ops.dwconv2d(x, w.half()), TypeError, "weight: expected dtype"),
        (lambda: replk_ops.dwconv2d(x[:, :, :2, :2], w, padding=0), ValueError, "smaller than the kernel"),
        (lambda: replk_ops.dwconv2d(x, torch.randn(4, 1, 65, 65, device="cuda"), backend="cuda"), RuntimeError,
         "cannot run"),
    ]
    for call, exception, text in bad:
        with pytest.raises(exception, match=text):
            call()
    y = replk_ops.dwconv2d(x, w)
    torch.cuda.synchronize()
    torch.testing.assert_close(y, F.conv2d(x, w, padding=2, groups=4), rtol=1e-4, atol=1e-4)


def _syncbn_step(model, rank=0, world=1):
    """One SGD step of ``model`` on this rank's share of a fixed batch of 8."""
    generator = torch.Generator().manual_seed(1)
    images, targets = torch.randn(8, 3, 32, 32, generator=generator), torch.randn(8, 4, generator=generator)
    part = slice(rank * 8 // world, (rank + 1) * 8 // world)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    F.mse_loss(model(images[part].cuda()), targets[part].cuda()).backward()
    optimizer.step()


def _syncbn_worker(rank, world, init_file, out_file):
    import torch.distributed as dist

    dist.init_process_group("nccl", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.cuda.set_device(rank)
        torch.manual_seed(0)
        net = tiny_replknet(num_classes=4, use_sync_bn=True).cuda()
        _syncbn_step(torch.nn.parallel.DistributedDataParallel(net, device_ids=[rank]), rank, world)
        if rank == 0:
            torch.save({k: v.cpu() for k, v in net.state_dict().items()}, out_file)
    finally:
        dist.destroy_process_group()


def test_syncbn_replknet_under_ddp_matches_one_process():
    """SyncBatchNorm over two GPUs sees the combined batch, like BatchNorm in one process."""
    import os
    import tempfile

    import torch.multiprocessing as mp

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs (NCCL runs one process per GPU)")
    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = os.path.join(tmp, "init"), os.path.join(tmp, "state.pt")
        mp.spawn(_syncbn_worker, args=(2, init_file, out_file), nprocs=2, join=True)
        distributed = torch.load(out_file)
    torch.manual_seed(0)
    single = tiny_replknet(num_classes=4).cuda()
    _syncbn_step(single)
    for name, value in single.state_dict().items():
        torch.testing.assert_close(distributed[name], value.cpu(), rtol=1e-4, atol=1e-5, msg=name)
