"""What the benchmark compares: PyTorch's own conv in each layout, and each replk_ops backend."""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

from .. import catalog

PASSES = ("fwd", "bwd_input", "bwd_weight", "fwd+bwd")


@dataclasses.dataclass
class Candidate:
    name: str
    channels_last: bool
    # pass name -> fn(x, weight, bias, grad_out, padding) returning the pass's outputs
    passes: Dict[str, Callable]
    is_baseline: bool = False


def _aten_backward(mask):
    def run(x, w, b, dy, pad):
        out = torch.ops.aten.convolution_backward(
            dy, x, w, [w.shape[0]], [1, 1], list(pad), [1, 1], False, [0, 0], x.shape[1], mask)
        return out[0] if mask[0] else (out[1], out[2])
    return run


def _autograd_step(forward):
    def run(x, w, b, dy, pad):
        x = x.detach().requires_grad_()
        w = w.detach().requires_grad_()
        b = b.detach().requires_grad_()
        forward(x, w, b, pad).backward(dy)
        return x.grad, w.grad, b.grad
    return run


def torch_candidate(channels_last: bool) -> Candidate:
    def fwd(x, w, b, pad):
        return F.conv2d(x, w, b, padding=pad, groups=x.shape[1])

    name = "nn.Conv2d " + ("channels_last" if channels_last else "NCHW")
    return Candidate(name, channels_last, {
        "fwd": lambda x, w, b, dy, pad: fwd(x, w, b, pad),
        "bwd_input": _aten_backward([True, False, False]),
        "bwd_weight": _aten_backward([False, True, True]),
        "fwd+bwd": _autograd_step(fwd),
    }, is_baseline=True)


def replk_candidate(backend: str, channels_last: bool = False) -> Candidate:
    import replk_ops

    ops = torch.ops.replk_ops

    def fwd(x, w, b, pad):
        return replk_ops.dwconv2d(x, w, b, pad, backend=backend)

    name = f"replk_ops {backend}" + (" (channels_last)" if channels_last else "")
    return Candidate(name, channels_last, {
        "fwd": lambda x, w, b, dy, pad: fwd(x, w, b, pad),
        "bwd_input": lambda x, w, b, dy, pad: ops.dwconv2d_bwd_input(dy, w, pad[0], pad[1], backend),
        "bwd_weight": lambda x, w, b, dy, pad: ops.dwconv2d_bwd_weight(
            dy, x, w.shape[2], w.shape[3], pad[0], pad[1], backend),
        "fwd+bwd": _autograd_step(fwd),
    })


def default_candidates(device: torch.device) -> List[Candidate]:
    """nn.Conv2d in both layouts, what "auto" gives in both layouts (what a converted model runs),
    and on CUDA each GPU backend on its own."""
    found = [torch_candidate(False), torch_candidate(True), replk_candidate("auto"),
             replk_candidate("auto", channels_last=True)]
    if device.type == "cuda":
        runnable = catalog.available_backends(device)
        found += [replk_candidate(name) for name in ("cuda", "triton", "fft") if name in runnable]
    return found


def same_layout_baseline(candidate_name: str, baselines: List[str]) -> str:
    """The nn.Conv2d row a replk_ops row must not be slower than: the one in its own layout."""
    wanted = "channels_last" if "channels_last" in candidate_name else "NCHW"
    return next(b for b in baselines if b.endswith(wanted))
