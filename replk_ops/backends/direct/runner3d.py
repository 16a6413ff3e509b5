"""The direct backend's 3-D passes: every pass as a forward ``conv3d`` on PyTorch's fast paths.

PyTorch's own depthwise conv3d backward on CPU costs 10 to 60 times its forward (measured, one
thread: 1x32x32^3 with 21^3, 0.4 s forward and 32 s backward); written as forward convs, each
pass costs about one forward (docs/conv3d.md):

- forward: the conv itself, on CPU in channels_last_3d for small kernels (oneDNN's depthwise
  kernel: 1x32x64^3 with 3^3, 37 ms against 185 ms in NCDHW), in the caller's layout from 7^3;
- input gradient: the forward with the kernel flipped along all three axes;
- weight gradient: a depthwise conv over the N*C volumes of the input (zero-padded by the conv)
  with the output gradient as the (large) kernel, strided by the dilation, summed over the batch.

On CUDA the forward and input gradient are the same forward convs through cuDNN in the caller's
layout, the weight gradient cuDNN's own (TF32 off throughout). Half precision is computed in
float32 and rounded once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..._checks import span
from ..base import NoTF32
from ..base3d import PassRunner3d
from ..base import compute_dtype, in_compute_dtype

CL3D = torch.channels_last_3d


# oneDNN's NCDHW depthwise conv is as fast as its channels_last_3d one from 7^3 on (1x48x32^3:
# 14.9 against 11.1 ms at 7^3, 103 against 100 ms at 13^3, 178 against 187 ms at 21^3), which a
# layout copy each way (4 ms each there) does not pay for; below, channels_last_3d is 2 to 5 times
# faster (1x32x64^3 3^3: 37 against 184 ms).
NCDHW_MIN_KERNEL = 7


# oneDNN's NCDHW convs copy their input and output into blocked layouts; run over chunks of about
# this many bytes of input, those copies stay small (1x48x32^3 7^3: a step's peak 24 MB against
# nn.Conv3d's 18 MB in one call). Depthwise convs are independent per channel.
CHUNK_BYTES = 1 << 20


def channel_chunks(t: torch.Tensor):
    """Slices over the channels of an NCDHW tensor ``t`` of about CHUNK_BYTES each."""
    per_channel = max(1, t[:, :1].numel() * t.element_size())
    step = max(1, CHUNK_BYTES // per_channel)
    return [slice(start, min(start + step, t.shape[1])) for start in range(0, t.shape[1], step)]


def _conv3d(t, weight, bias, padding, dilation):
    """``F.conv3d`` of ``t`` (in the compute dtype), depthwise; on CPU through channels_last_3d for
    kernels below NCDHW_MIN_KERNEL, else in the caller's layout (NCDHW: chunk by chunk)."""
    if t.is_cuda:
        with NoTF32():
            return F.conv3d(t, weight, bias, 1, tuple(padding), tuple(dilation), t.shape[1])
    if min(weight.shape[2:]) < NCDHW_MIN_KERNEL:
        t = t.contiguous(memory_format=CL3D)
    chunks = channel_chunks(t) if t.is_contiguous() else [slice(None)]
    if len(chunks) == 1:
        return F.conv3d(t, weight, bias, 1, tuple(padding), tuple(dilation), t.shape[1])
    out = None
    for cs in chunks:
        part = F.conv3d(t[:, cs], weight[cs], None if bias is None else bias[cs], 1, tuple(padding),
                        tuple(dilation), cs.stop - cs.start)
        if out is None:
            out = part.new_empty((t.shape[0], t.shape[1]) + part.shape[2:])
        out[:, cs] = part
    return out


def input_grad_as_forward3d(grad_out, kernel, padding, dilation):
    """(dy, q): the input gradient is the forward conv of dy with the flipped kernel and padding
    q = span - 1 - p per axis; where that is negative (padding wider than the span), dy is cropped."""
    q = [span(k, d) - 1 - p for k, p, d in zip(kernel, padding, dilation)]
    dy = grad_out
    for axis, qa in enumerate(q, start=2):
        if qa < 0:
            dy = dy.narrow(axis, -qa, dy.shape[axis] + 2 * qa)
    return dy, tuple(max(qa, 0) for qa in q)


class Direct3d(PassRunner3d):
    def fwd(self, x, weight, bias, padding, dilation=(1, 1, 1)):
        out = _conv3d(in_compute_dtype(x), in_compute_dtype(weight), in_compute_dtype(bias), padding, dilation)
        return out.to(x.dtype)

    def bwd_input(self, grad_out, weight, padding, dilation=(1, 1, 1)):
        dy, q = input_grad_as_forward3d(grad_out, weight.shape[2:], padding, dilation)
        flipped = weight.to(compute_dtype(weight.dtype)).flip(2, 3, 4)
        return _conv3d(in_compute_dtype(dy), flipped, None, q, dilation).to(grad_out.dtype)

    def bwd_weight(self, grad_out, x, kernel, padding, dilation=(1, 1, 1)):
        n, c = x.shape[0], x.shape[1]
        cdt = compute_dtype(x.dtype)
        grad_bias = grad_out.sum(dim=(0, 2, 3, 4), dtype=cdt)
        if n == 0:
            grad_weight = torch.zeros((c, 1) + tuple(kernel), dtype=cdt, device=x.device)
        elif x.is_cuda:
            with NoTF32():
                grad_weight = torch.ops.aten.convolution_backward(
                    in_compute_dtype(grad_out), in_compute_dtype(x),
                    torch.empty((c, 1) + tuple(kernel), dtype=cdt, device=x.device), None, [1, 1, 1],
                    list(padding), list(dilation), False, [0, 0, 0], c, [False, True, False])[1]
        else:
            grad_weight = self._bwd_weight_as_conv(grad_out, x, kernel, padding, cdt, dilation)
        return grad_weight.to(x.dtype), grad_bias.to(x.dtype)

    @staticmethod
    def _bwd_weight_as_conv(grad_out, x, kernel, padding, cdt, dilation):
        # dw[c, t] = sum_n sum_o dy[n, c, o] * x_pad[n, c, o + t * dilation]: for each (n, c) volume a
        # correlation of the input, with the conv's own zero padding, with dy as the kernel, strided
        # by the dilation; one depthwise conv over the N*C volumes computes them all, then the batch
        # is summed. The conv's own padding: 18 ms against 29 ms for a padded copy at 1x48x32^3 7^3
        # (75 against 101 ms at 1x32x64^3 3^3), and no copy in memory. At batch 1 the volumes are
        # the input itself, in its own layout.
        n, c = grad_out.shape[0], grad_out.shape[1]
        volumes = x.to(cdt).reshape((1, n * c) + x.shape[2:])
        kernels = grad_out.to(cdt).reshape((n * c, 1) + grad_out.shape[2:])
        chunks = channel_chunks(volumes) if volumes.is_contiguous() else [slice(None)]
        per_volume = torch.cat([F.conv3d(volumes[:, cs], kernels[cs], None, tuple(dilation), tuple(padding), 1,
                                         kernels[cs].shape[0]) for cs in chunks], dim=1)
        return per_volume.reshape((n, c) + tuple(kernel)).sum(dim=0).unsqueeze(1)
