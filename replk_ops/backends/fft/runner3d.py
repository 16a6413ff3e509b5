"""The fft backend's 3-D passes: products of 3-D real FFTs (``torch.fft.rfftn``), with the 2-D
route's transform sizes, crop and channel chunks (``transforms``), over three axes.

- forward: ``irfftn(rfftn(x) * G)`` cropped, G the spectrum of the flipped kernel;
- input gradient: ``irfftn(rfftn(dy) * conj(G))`` cropped;
- weight gradient: ``irfftn(sum_n conj(rfftn(dy_n)) * rfftn(x_n))`` at the kernel's taps;
- ``backward`` transforms dy once for both gradients.

The kernel's spectrum is computed chunk by chunk and not kept (unlike the 2-D route's cache): over
three axes it is as large as a transformed input (48 channels of 13^3 at 32^3: 13 MB), which
would raise a training step's peak memory above nn.Conv3d's.

Its cost per voxel hardly grows with the kernel: at 1x32x32^3 with 21^3 its whole fwd+bwd takes
less time than PyTorch's forward alone. A call with a NaN or Inf in its inputs runs on the direct
route (a transform would spread one NaN over its whole channel); half precision is computed in
float32 and rounded once.
"""
from __future__ import annotations

import torch

from . import transforms
from ..._checks import input_sizes, output_sizes
from ..._layout import memory_format_of
from ..base3d import PassRunner3d
from ..direct import Direct3d
from ..base import in_compute_dtype as _compute
from .runner import FFTRunner, _all_finite, _planes

_DIRECT = Direct3d()
_UNDILATED = (1, 1, 1)


def _undilated(dilation) -> None:
    # the catalogue rejects dilated problems (unavailable_reason): a call here is a bug, not input
    if tuple(dilation) != _UNDILATED:
        raise RuntimeError(f"dilation: the fft backend runs undilated kernels only, got {tuple(dilation)}")


def _kernel_spectrum(weight, s, padding):
    return transforms.kernel_spectrum_nd(_compute(weight), s, padding)


class FFT3d(PassRunner3d):
    unavailable_reason = FFTRunner.unavailable_reason  # the same limits as the 2-D passes

    def fwd(self, x, weight, bias, padding, dilation=_UNDILATED):
        _undilated(dilation)
        if x.numel() == 0 or not _all_finite(x, weight, bias):
            return _DIRECT.fwd(x, weight, bias, padding)
        n, c = x.shape[0], x.shape[1]
        kernel = tuple(weight.shape[2:])
        s = transforms.transform_sizes(x.shape[2:], kernel, padding)
        out_size = output_sizes(x.shape[2:], kernel, padding, _UNDILATED)
        xc = _planes(x)
        out = torch.empty((n, c) + out_size, dtype=xc.dtype, device=x.device, memory_format=memory_format_of(x))
        for cs in transforms.channel_chunks(n, c, s, xc.dtype):
            g = _kernel_spectrum(weight[cs], s, padding)
            out[:, cs] = transforms.crop_inverse(transforms.spectrum(xc[:, cs], s).mul_(g), s, out_size)
        if bias is not None:
            out += _compute(bias).view(1, c, 1, 1, 1)
        return out.to(x.dtype)

    def bwd_input(self, grad_out, weight, padding, dilation=_UNDILATED):
        _undilated(dilation)
        return self._backward(grad_out, None, weight, padding, need_input=True, need_weight=False)[0]

    def bwd_weight(self, grad_out, x, kernel, padding, dilation=_UNDILATED):
        _undilated(dilation)
        dummy = torch.empty((x.shape[1], 1) + tuple(kernel), dtype=x.dtype, device="meta")  # only its shape is read
        _, dw, db = self._backward(grad_out, x, dummy, padding, need_input=False, need_weight=True)
        return dw, db

    def backward(self, grad_out, x, weight, padding, dilation=_UNDILATED):
        _undilated(dilation)
        return self._backward(grad_out, x, weight, padding, need_input=True, need_weight=True)

    def _backward(self, grad_out, x, weight, padding, need_input, need_weight):
        """(dx or None, dw or None, db or None), dy transformed once for both gradients."""
        kernel = tuple(weight.shape[2:])
        n, c = grad_out.shape[0], grad_out.shape[1]
        size = input_sizes(grad_out.shape[2:], kernel, padding, _UNDILATED)
        if grad_out.numel() == 0 or not _all_finite(grad_out, x, weight if need_input else None):
            dx = _DIRECT.bwd_input(grad_out, weight, padding) if need_input else None
            dw, db = _DIRECT.bwd_weight(grad_out, x, kernel, padding) if need_weight else (None, None)
            return dx, dw, db
        s = transforms.transform_sizes(size, kernel, padding)
        dyc = _planes(grad_out)
        xc = _planes(x) if need_weight else None
        dx = torch.empty((n, c) + size, dtype=dyc.dtype, device=grad_out.device,
                         memory_format=memory_format_of(grad_out)) if need_input else None
        dw = torch.empty((c, 1) + kernel, dtype=dyc.dtype, device=grad_out.device) if need_weight else None
        for cs in transforms.channel_chunks(n, c, s, dyc.dtype):
            dy_spec = transforms.spectrum(dyc[:, cs], s)
            if need_weight:
                # conj(X) * DY summed over the batch, conjugated once (physical conjugates: see fft.py)
                corr = transforms.spectrum(xc[:, cs], s).conj_physical_().mul_(dy_spec).sum(dim=0).conj_physical_()
                dw[cs, 0] = transforms.weight_from_correlation_nd(corr, s, kernel, padding)
            if need_input:
                g = _kernel_spectrum(weight[cs], s, padding)
                dx[:, cs] = transforms.crop_inverse(dy_spec.mul_(g.conj_physical_()), s, size)
        db = None
        if need_weight:
            db = grad_out.sum(dim=(0, 2, 3, 4), dtype=dyc.dtype).to(x.dtype)
            dw = dw.to(x.dtype)
        return (dx.to(grad_out.dtype) if need_input else None), dw, db
