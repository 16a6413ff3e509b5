"""The fft backend: every pass as pointwise products of 2-D real FFTs (``torch.fft``: pocketfft on
CPU, cuFFT on CUDA).

A direct depthwise conv costs 2 * kh * kw FLOPs per output; the transforms cost about the same per
pixel whatever the kernel, so from a few hundred taps on they win (docs/design.md, "FFT"). The
transform sizes and the crop are in ``transforms``.

- forward: ``irfft2(rfft2(x) * G)`` cropped, G the spectrum of the flipped kernel;
- input gradient: ``irfft2(rfft2(dy) * conj(G))`` cropped;
- weight gradient: ``irfft2(sum_n conj(rfft2(dy_n)) * rfft2(x_n))`` at the kernel's taps;
- ``backward`` computes both gradients with one transform of dy, and takes the kernel's spectrum
  from the forward where the weight has not changed since (``spectrum_cache``); inference calls
  keep it from call to call.

float16 and bfloat16 are computed in float32 and rounded once. A call with a NaN or Inf in its
inputs runs on the ``direct`` backend instead: in a transform one NaN would spread over its
whole channel, while a convolution keeps it to the outputs it reaches.
"""
from __future__ import annotations

from typing import Optional

import torch

from . import transforms
from ..._checks import input_size, output_size
from ..._layout import memory_format_of
from ..base import PassRunner, in_compute_dtype
from ..direct import ForwardConvRunner
from .spectrum_cache import SpectrumCache

_DIRECT = ForwardConvRunner()
_UNDILATED = (1, 1)


def _all_finite(*tensors) -> bool:
    # a sum is non-finite if any element is (or, rarely, if it overflows: then the direct route
    # runs, which is merely slower). Reading it back cannot happen while a CUDA graph is captured:
    # then the direct route runs.
    if any(t is not None and t.is_cuda for t in tensors) and torch.cuda.is_current_stream_capturing():
        return False
    return all(bool(torch.isfinite(t.sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32)))
               for t in tensors if t is not None)


def _undilated(dilation) -> None:
    # the catalogue rejects dilated problems (unavailable_reason): a call here is a bug, not input
    if tuple(dilation) != _UNDILATED:
        raise RuntimeError(f"dilation: the fft backend runs undilated kernels only, got {tuple(dilation)}")


def _planes(t: torch.Tensor) -> torch.Tensor:
    # pocketfft is fastest on contiguous rows; a channels_last or strided input is copied once
    return in_compute_dtype(t).contiguous()


class FFTRunner(PassRunner):
    def __init__(self):
        self.cache = SpectrumCache()

    def unavailable_reason(self, problem) -> Optional[str]:
        if problem.dilated:
            return "undilated kernels only (a dilated call runs on the other routes)"
        if problem.deterministic and problem.device_type == "cuda":
            return "cuFFT is not documented as deterministic, and deterministic algorithms are on"
        return None

    def fwd(self, x, weight, bias, ph, pw, dilation=_UNDILATED):
        _undilated(dilation)
        if x.numel() == 0 or not _all_finite(x, weight, bias):
            return _DIRECT.fwd(x, weight, bias, ph, pw)
        n, c, h, w = x.shape
        kh, kw = weight.shape[2], weight.shape[3]
        s = transforms.transform_shape(h, w, kh, kw, ph, pw)
        ho, wo = output_size(h, w, kh, kw, ph, pw)
        xc = _planes(x)
        # kept for the next inference call, or for this step's backward (which takes it out)
        g = self.cache.get(weight, s, (ph, pw), lambda: transforms.kernel_spectrum(in_compute_dtype(weight), s, ph, pw))
        # written chunk by chunk in the caller's layout (the ops then have nothing to copy)
        out = torch.empty((n, c, ho, wo), dtype=xc.dtype, device=x.device, memory_format=memory_format_of(x))
        for cs in transforms.channel_chunks(n, c, s, xc.dtype):
            spec = transforms.spectrum(xc[:, cs], s).mul_(g[cs])
            out[:, cs] = transforms.crop_inverse(spec, s, (ho, wo))
        if bias is not None:
            out += in_compute_dtype(bias).view(1, c, 1, 1)
        return out.to(x.dtype)

    def bwd_input(self, grad_out, weight, ph, pw, dilation=_UNDILATED):
        _undilated(dilation)
        return self._backward(grad_out, None, weight, ph, pw, need_input=True, need_weight=False)[0]

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw, dilation=_UNDILATED):
        _undilated(dilation)
        # only the kernel's shape is read when the input gradient is not wanted
        dummy = torch.empty((x.shape[1], 1, kh, kw), dtype=x.dtype, device="meta")
        _, dw, db = self._backward(grad_out, x, dummy, ph, pw, need_input=False, need_weight=True)
        return dw, db

    def backward(self, grad_out, x, weight, ph, pw, dilation=_UNDILATED):
        _undilated(dilation)
        return self._backward(grad_out, x, weight, ph, pw, need_input=True, need_weight=True)

    def _backward(self, grad_out, x, weight, ph, pw, need_input, need_weight):
        """(dx or None, dw or None, db or None): the spectrum of dy is computed once for both
        gradients (``weight`` may be a meta tensor when only the weight gradient is wanted)."""
        kh, kw = weight.shape[2], weight.shape[3]
        n, c, ho, wo = grad_out.shape
        h, w = input_size(ho, wo, kh, kw, ph, pw)
        finite = _all_finite(grad_out, x, weight if need_input else None)
        if grad_out.numel() == 0 or not finite:
            dx = _DIRECT.bwd_input(grad_out, weight, ph, pw) if need_input else None
            dw, db = _DIRECT.bwd_weight(grad_out, x, kh, kw, ph, pw) if need_weight else (None, None)
            return dx, dw, db
        s = transforms.transform_shape(h, w, kh, kw, ph, pw)
        dyc = _planes(grad_out)
        xc = _planes(x) if need_weight else None
        dx = torch.empty((n, c, h, w), dtype=dyc.dtype, device=grad_out.device,
                         memory_format=memory_format_of(grad_out)) if need_input else None
        dw = torch.empty((c, 1, kh, kw), dtype=dyc.dtype, device=grad_out.device) if need_weight else None
        g = None
        if need_input:  # the forward's, where the weight has not changed since
            g = self.cache.take(weight, s, (ph, pw),
                                lambda: transforms.kernel_spectrum(in_compute_dtype(weight), s, ph, pw))
        for cs in transforms.channel_chunks(n, c, s, dyc.dtype):
            dy_spec = transforms.spectrum(dyc[:, cs], s)
            if need_weight:
                # conj(X) * DY summed over the batch, conjugated once: conj(DY) * X without a copy
                # of DY's spectrum. Conjugates are physical throughout: with a lazily conjugated
                # operand, mul_ gave wrong results under AOT tracing (opcheck)
                corr = transforms.spectrum(xc[:, cs], s).conj_physical_().mul_(dy_spec).sum(dim=0).conj_physical_()
                dw[cs, 0] = transforms.weight_from_correlation(corr, s, kh, kw, ph, pw)
            if need_input:
                dx[:, cs] = transforms.crop_inverse(dy_spec.mul_(g[cs].conj_physical()), s, (h, w))
        if need_input:
            dx = dx.to(grad_out.dtype)
        db = None
        if need_weight:
            db = grad_out.sum(dim=(0, 2, 3), dtype=dyc.dtype).to(x.dtype)
            dw = dw.to(x.dtype)
        return dx, dw, db
